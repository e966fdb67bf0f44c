// mmgan book: on a narrow screen a figure is shrunk to the column, and its text with it; tapping it opens the
// image at the size it was drawn (every figure of a chapter's output becomes a link to its own image file).
document.addEventListener("DOMContentLoaded", () => {
  for (const img of document.querySelectorAll(".cell_output img")) {
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
