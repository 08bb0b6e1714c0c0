// A button with data-print prints the page. In a file, not an onclick
// attribute: the Content-Security-Policy allows no inline event handlers.
document.addEventListener("click", (event) => {
  const button = event.target instanceof Element ? event.target.closest("[data-print]") : null;
  if (button) {
    window.print();
  }
});
