// The share page (/r/{id}) is for link previews; people go on to the report in the app.
const open = document.getElementById('open-report');
if (open) location.replace(open.getAttribute('href'));
