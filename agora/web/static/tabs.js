// A console's row of tabs scrolls sideways on a phone: keep the current page's tab in view, on load and when
// the window changes width (a phone turned). Only the row scrolls, never the page.
function showCurrentTab() {
  const current = document.querySelector('.section-nav [aria-current="page"]');
  const row = current && current.closest("ul");
  if (!row || row.scrollWidth <= row.clientWidth) return;
  const tab = current.getBoundingClientRect();
  const box = row.getBoundingClientRect();
  row.scrollLeft += tab.left - box.left - (box.width - tab.width) / 2;
}
document.addEventListener("DOMContentLoaded", showCurrentTab);
window.addEventListener("resize", showCurrentTab);
