// mmgan book: every figure of a chapter's output becomes a link to its own image file (tapping it opens the image
// at the size it was drawn), and no figure is shown below PHONE_SCALE of that size: on a narrow screen a wider one
// scrolls sideways inside its own frame, so its text stays readable (at least 7 CSS px; the browser check measures it).
const PHONE_SCALE = 0.65;
document.addEventListener("DOMContentLoaded", () => {
  for (const img of document.querySelectorAll(".cell_output img")) {
    const keepReadable = () => { img.style.minWidth = `${Math.ceil(img.naturalWidth * PHONE_SCALE)}px`; };
    if (img.complete && img.naturalWidth > 0) keepReadable(); else img.addEventListener("load", keepReadable);
    if (img.closest("a")) continue;
    const link = document.createElement("a");
    link.href = img.currentSrc || img.src;
    link.target = "_blank";
    link.rel = "noopener";
    link.title = "open the figure at the size it was drawn";
    link.className = "mmgan-figure-link";
    img.parentNode.insertBefore(link, img);
    link.appendChild(img);
  }
});
