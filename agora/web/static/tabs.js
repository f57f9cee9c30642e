// A console's row of tabs scrolls sideways on a phone: bring the current page's tab into view.
document.addEventListener("DOMContentLoaded", () => {
  const current = document.querySelector('.section-nav [aria-current="page"]');
  if (current) current.scrollIntoView({ block: "nearest", inline: "center" });
});
