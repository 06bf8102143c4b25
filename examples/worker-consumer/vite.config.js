// The worker is an ES module (it imports the package, which loads its wasm by a dynamic import
// after a panic): Vite's default worker format, iife, cannot split code.
export default { worker: { format: 'es' } };
