// Builds a delivered message in one call with a fixed shape (amqplib's {content, fields,
// properties}), instead of one property write per field from wasm.
export function makeMessage(
  content, consumerTag, deliveryTag, redelivered, messageCount, exchange, routingKey,
  contentType, contentEncoding, headers, deliveryMode, priority, correlationId, replyTo,
  expiration, messageId, timestamp, type, userId, appId,
) {
  return {
    content,
    fields: { consumerTag, deliveryTag, redelivered, exchange, routingKey, messageCount },
    properties: {
      contentType, contentEncoding, headers, deliveryMode, priority, correlationId, replyTo,
      expiration, messageId, timestamp, type, userId, appId,
    },
  };
}
