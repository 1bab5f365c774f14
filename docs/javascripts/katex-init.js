// Typeset the math that pymdownx.arithmatex marked (<span class="arithmatex">\(...\)</span> inline,
// <div class="arithmatex">\[...\]</div> display) with the local copy of KaTeX in docs/assets/katex.
// Material's document$ fires on every page load, instant navigation included.
document$.subscribe(({ body }) => {
  for (const element of body.querySelectorAll(".arithmatex")) {
    const tex = element.textContent.trim();
    const display = tex.startsWith("\\[");
    // throwOnError: false shows a formula KaTeX cannot parse in red (class katex-error).
    katex.render(tex.slice(2, -2), element, { displayMode: display, throwOnError: false });
  }
});
