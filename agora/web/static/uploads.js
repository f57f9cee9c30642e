/* Uploads on the listing wizard, enhanced: drop a file on the box, see a progress bar while it is sent, and
   the page reloads with the file's preview. Without JavaScript the same forms post as plain file uploads. */
(function () {
  "use strict";

  function send(form, file) {
    var status = form.querySelector(".upload-status");
    var bar = form.querySelector(".upload-progress");
    var button = form.querySelector("button[type=submit]");
    var data = new FormData(form);
    if (file) { data.set("file", file, file.name); }
    var picked = data.get("file");
    if (!picked || !picked.name) {
      status.textContent = "Choose a file first.";
      status.classList.add("failed");
      return;
    }
    var request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("Accept", "application/json");
    request.setRequestHeader("X-CSRF-Token", form.querySelector("input[name=csrf_token]").value);
    bar.hidden = false;
    bar.value = 0;
    button.disabled = true;
    status.classList.remove("failed");
    status.textContent = "Uploading " + picked.name + "…";
    request.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) { bar.value = Math.round((event.loaded / event.total) * 100); }
    });
    request.addEventListener("load", function () {
      var answer = {};
      try { answer = JSON.parse(request.responseText); } catch (ignored) { answer = {}; }
      if (request.status < 300 && answer.location) {
        bar.value = 100;
        status.textContent = "Uploaded. Showing the file…";
        var target = new URL(answer.location, window.location.href);
        if (target.pathname === window.location.pathname && target.search === window.location.search) {
          window.location.hash = target.hash;
          window.location.reload();
        } else {
          window.location.assign(target.href);
        }
        return;
      }
      button.disabled = false;
      bar.hidden = true;
      status.classList.add("failed");
      status.textContent = answer.detail || "The upload failed (" + request.status + "). Please try again.";
    });
    request.addEventListener("error", function () {
      button.disabled = false;
      bar.hidden = true;
      status.classList.add("failed");
      status.textContent = "The upload did not reach the server. Check your connection and try again.";
    });
    request.send(data);
  }

  function enhance(form) {
    var zone = form.querySelector(".drop-zone");
    var input = form.querySelector("input[type=file]");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      send(form, null);
    });
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) {
        event.preventDefault();
        zone.classList.add("dragging");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("dragging"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      var files = event.dataTransfer && event.dataTransfer.files;
      if (files && files.length) {
        try { input.files = files; } catch (ignored) { /* older browsers: send the dropped file directly */ }
        send(form, files[0]);
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!window.FormData || !window.XMLHttpRequest) { return; }
    document.documentElement.classList.add("js-uploads");
    Array.prototype.forEach.call(document.querySelectorAll("form[data-upload]"), enhance);
  });
})();
