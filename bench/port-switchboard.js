// The SharedWorker of the bench's MessagePort rows (bench/mesh-workloads.js pair()): the first two
// tabs that send the same `key` get the two ends of one MessageChannel, so that they talk point
// to point instead of over a BroadcastChannel every tab of the origin hears.
const waiting = new Map(); // key -> the port of the tab that asked first

onconnect = (e) => {
  const port = e.ports[0];
  port.onmessage = ({ data: { key } }) => {
    const other = waiting.get(key);
    if (!other) {
      waiting.set(key, port);
      return;
    }
    waiting.delete(key);
    const { port1, port2 } = new MessageChannel();
    other.postMessage('paired', [port1]);
    port.postMessage('paired', [port2]);
  };
};
