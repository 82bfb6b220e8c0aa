// Serve the chapters' "Open in Colab" badge from the book itself, next to this
// script, instead of from colab.research.google.com: the badge then shows offline
// too, and opening a page sends no request to Google. The link is unchanged.
// Without JavaScript, an offline reader sees the image's alt text, "Open In Colab".
(function () {
  "use strict";
  var remote = "https://colab.research.google.com/assets/colab-badge.svg";
  var script = document.currentScript;
  if (!script) return;
  var local = script.src.replace(/[^/]*$/, "colab-badge.svg");
  function swap() {
    var images = document.querySelectorAll('img[src="' + remote + '"]');
    for (var i = 0; i < images.length; i++) images[i].src = local;
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", swap);
  } else {
    swap();
  }
})();
