#!/usr/bin/env python3
"""A consumer on the RabbitMQ side of the bridge tests, with pika as RabbitMQ's tutorial uses it:
queue_declare, then basic_consume with a callback, then start_consuming.

    python3 receive.py PORT QUEUE COUNT [TIMEOUT_S]

Prints one JSON line per message (body, message id, content type, correlation id, reply-to,
headers, delivery mode, redelivered) and exits after COUNT messages, or with status 2 after
TIMEOUT_S seconds (default 60) without them.
"""
import json
import sys

import pika


def main():
    port, queue, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 60.0
    connection = pika.BlockingConnection(pika.ConnectionParameters(host="127.0.0.1", port=port))
    channel = connection.channel()
    channel.queue_declare(queue=queue)
    got = []

    def callback(ch, method, properties, body):
        got.append(body)
        print(json.dumps({
            "body": body.decode(errors="replace"),
            "messageId": properties.message_id,
            "contentType": properties.content_type,
            "correlationId": properties.correlation_id,
            "replyTo": properties.reply_to,
            "headers": {k: str(v) for k, v in (properties.headers or {}).items()},
            "deliveryMode": properties.delivery_mode,
            "redelivered": method.redelivered,
        }), flush=True)
        if len(got) >= count:
            ch.stop_consuming()

    def give_up():
        print(json.dumps({"timeout": timeout, "got": len(got)}), flush=True)
        channel.stop_consuming()

    connection.call_later(timeout, give_up)
    channel.basic_consume(queue=queue, on_message_callback=callback, auto_ack=True)
    channel.start_consuming()
    connection.close()
    sys.exit(0 if len(got) >= count else 2)


if __name__ == "__main__":
    main()
