//! The plain home page at `/`: sign in, then see the machines and the orders. The page itself is
//! static and public; the data comes from the authenticated API, so nothing leaks to a visitor
//! without credentials. The full dashboard replaces this page.

use axum::response::Html;

/// Serves the home page.
pub(crate) async fn home() -> Html<&'static str> {
    Html(HOME)
}

const HOME: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>microfactory</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem; color: #1b1f24; background: #f6f7f9; }
  h1 { margin: 0 0 1rem; } h2 { margin-top: 2rem; }
  form { display: flex; gap: .5rem; align-items: end; flex-wrap: wrap; }
  label { display: flex; flex-direction: column; font-size: .9rem; }
  input, button { font: inherit; padding: .4rem .6rem; }
  button { background: #0b5cad; color: #fff; border: 0; border-radius: 4px; cursor: pointer; }
  table { border-collapse: collapse; background: #fff; min-width: 60%; }
  th, td { border: 1px solid #d0d4da; padding: .3rem .6rem; text-align: left; }
  th { background: #e9edf2; }
  #error { color: #b00020; }
</style>
</head>
<body>
<h1>microfactory</h1>
<form id="login">
  <label>User name <input name="username" autocomplete="username" value="admin" required></label>
  <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
  <button type="submit">Sign in</button>
  <span id="error" role="alert"></span>
</form>
<section id="data" hidden>
  <h2>Machines</h2>
  <table id="machines"><thead><tr><th>Code</th><th>Name</th><th>Kind</th><th>Rated kW</th></tr></thead><tbody></tbody></table>
  <h2>Orders</h2>
  <table id="orders"><thead><tr><th>Number</th><th>Customer</th><th>Quantity</th><th>Due</th><th>Status</th></tr></thead><tbody></tbody></table>
</section>
<script>
const api = async (path, token) => {
  const response = await fetch('/api/v1' + path, { headers: { Authorization: 'Bearer ' + token } });
  if (!response.ok) throw new Error((await response.json()).detail);
  return response.json();
};
const fill = (id, rows) => {
  const body = document.querySelector('#' + id + ' tbody');
  body.replaceChildren(...rows.map(cells => {
    const tr = document.createElement('tr');
    for (const cell of cells) { const td = document.createElement('td'); td.textContent = cell; tr.append(td); }
    return tr;
  }));
};
const show = async token => {
  const machines = await api('/machines?limit=500', token);
  fill('machines', machines.items.map(m => [m.code, m.name, m.kind, m.rated_power_kw]));
  const orders = await api('/orders?limit=500', token);
  fill('orders', orders.items.map(o => [o.number, o.customer, o.quantity, o.due, o.status]));
  document.getElementById('data').hidden = false;
};
document.getElementById('login').addEventListener('submit', async event => {
  event.preventDefault();
  const form = new FormData(event.target);
  const error = document.getElementById('error');
  error.textContent = '';
  const response = await fetch('/api/v1/auth/login', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: form.get('username'), password: form.get('password') }),
  });
  if (!response.ok) { error.textContent = (await response.json()).detail; return; }
  const { token } = await response.json();
  sessionStorage.setItem('mf-token', token);
  show(token).catch(e => error.textContent = e.message);
});
const saved = sessionStorage.getItem('mf-token');
if (saved) show(saved).catch(() => sessionStorage.removeItem('mf-token'));
</script>
</body>
</html>
"#;
