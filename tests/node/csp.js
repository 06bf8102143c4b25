// Runs the package under csp.html's policy: connect (the mesh too), a confirmed persistent
// publish, a structured value, get and ack. Writes "ok …" or the error into #result, and
// every CSP violation into window.violations.
window.violations = [];
document.addEventListener('securitypolicyviolation', (e) => window.violations.push(`${e.violatedDirective}: ${e.blockedURI}`));
const out = document.getElementById('result');
try {
  const { connect } = await import('/pkg/index.js');
  const conn = await connect({ name: `csp-${Date.now()}` });
  const ch = await conn.createConfirmChannel();
  await ch.assertQueue('q', { durable: true });
  ch.sendToQueue('q', 'under a strict policy', { persistent: true });
  ch.sendToQueue('q', { n: 1, when: new Date(0) }, { structured: true });
  await ch.waitForConfirms();
  const first = await ch.get('q');
  const second = await ch.get('q', { structured: true });
  ch.ack(first);
  ch.ack(second);
  out.textContent = `ok ${new TextDecoder().decode(first.content)} ${second.value.n} hosting=${conn.hosting}`;
  await conn.close();
} catch (e) {
  out.textContent = `error ${e?.code ?? ''} ${e?.message ?? e}`;
}
