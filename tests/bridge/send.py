#!/usr/bin/env python3
"""A producer on the RabbitMQ side of the bridge tests, with pika as RabbitMQ's tutorial uses it:
queue_declare, then basic_publish to the default exchange with the queue's name as routing key.

    python3 send.py PORT QUEUE BODY [BODY...]

Each BODY is one message. The first carries properties too (content type, correlation id,
reply-to, message id, a custom header), for the bridge's mapping test.
"""
import sys

import pika


def main():
    port, queue, bodies = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    connection = pika.BlockingConnection(pika.ConnectionParameters(host="127.0.0.1", port=port))
    channel = connection.channel()
    channel.queue_declare(queue=queue)
    for i, body in enumerate(bodies):
        properties = None
        if i == 0:
            properties = pika.BasicProperties(
                content_type="text/plain",
                correlation_id="corr-1",
                reply_to="answers",
                message_id="pika-1",
                headers={"x-origin": "pika"},
            )
        channel.basic_publish(exchange="", routing_key=queue, body=body.encode(), properties=properties)
        print(f" [x] Sent {body!r}", flush=True)
    connection.close()


if __name__ == "__main__":
    main()
