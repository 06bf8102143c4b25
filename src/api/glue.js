// Builds messages in one call each with amqplib's fixed shapes, instead of one property
// write per field from wasm.

export function consumeFields(consumerTag, deliveryTag, redelivered, exchange, routingKey) {
  return { consumerTag, deliveryTag, redelivered, exchange, routingKey };
}

export function getFields(deliveryTag, redelivered, exchange, routingKey, messageCount) {
  return { deliveryTag, redelivered, exchange, routingKey, messageCount };
}

export function returnFields(replyCode, replyText, exchange, routingKey) {
  return { replyCode, replyText, exchange, routingKey };
}

export function makeMessage(
  content, fields, contentType, contentEncoding, headers, deliveryMode, priority, correlationId,
  replyTo, expiration, messageId, timestamp, type, userId, appId,
) {
  return {
    content,
    fields,
    properties: {
      contentType, contentEncoding, headers, deliveryMode, priority, correlationId, replyTo,
      expiration, messageId, timestamp, type, userId, appId,
    },
  };
}

// An exception thrown by an app's callback (a consumer, a publish callback): reported as
// uncaught, as an event listener's would be, without stopping the broker.
export function reportUncaught(e) {
  if (typeof globalThis.reportError === 'function') globalThis.reportError(e);
  else setTimeout(() => { throw e; });
}
