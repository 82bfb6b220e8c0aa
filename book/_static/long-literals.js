// An inline literal wider than the text column (a long URL) may break inside,
// instead of running past the column's edge. Every other literal keeps Sphinx's
// unbreakable words (span.pre), so `trec-dl-2019/` never splits at a hyphen.
(function () {
  "use strict";
  function wrap() {
    var words = document.querySelectorAll(".bd-article code.literal span.pre");
    for (var i = 0; i < words.length; i++) {
      var word = words[i];
      var box = word.closest("p, li, dd, td, th") || word.closest(".bd-article");
      if (word.getBoundingClientRect().width > box.clientWidth) {
        word.style.whiteSpace = "normal";
        word.style.overflowWrap = "anywhere";
      }
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", wrap);
  } else {
    wrap();
  }
})();
