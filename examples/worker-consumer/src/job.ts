/** What the page sends the worker, as a structured value (a Set and a Date travel as they are). */
export type Thumbnail = { photo: number; sizes: Set<number>; at: Date };
/** What the worker sends back. */
export type Done = { photo: number; pixels: number; tookMs: number };
export const BROKER = 'example-worker';
