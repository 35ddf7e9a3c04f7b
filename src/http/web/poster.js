// The poster's Print button (the page has no inline script: its CSP forbids it).
const button = document.getElementById('print-poster');
if (button) button.addEventListener('click', () => window.print());
