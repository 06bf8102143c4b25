// The package's errors: an Error with amqplib's reply code (`code`), the codes of ReplyCode in
// index.d.ts.

/** An Error with `code`: `message` says what went wrong and what to change. */
export function failed(message, code) {
  const e = new Error(message);
  e.code = code;
  return e;
}
