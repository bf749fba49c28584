/**
 * Node `Buffer` views of message bodies, for drivers that want Buffers (amqplib, kafkajs).
 */

/** No copy: the drivers only read the bytes while framing or encoding them. */
export const asBuffer = (body: Uint8Array): Buffer =>
  Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength)
