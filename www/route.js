// The route: which view location.hash shows.

/** #/overview, #/connections, #/exchanges, #/exchanges/<name> ('' the default), #/queues, #/queues/<name>, #/demo. */
export let route = { view: 'overview', name: '' };
export const NAV = { exchange: 'exchanges', queue: 'queues' };

function parseRoute() {
  const [first, ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  const name = decodeURIComponent(rest.join('/'));
  if (first === 'queues' && rest.length && name) return { view: 'queue', name };
  if (first === 'exchanges' && rest.length) return { view: 'exchange', name };
  if (['overview', 'connections', 'exchanges', 'queues', 'demo'].includes(first)) return { view: first, name: '' };
  return { view: 'overview', name: '' };
}

/** Reads the route from location.hash; returns the one it replaces. */
export function navigate() {
  const prev = route;
  route = parseRoute();
  return prev;
}
