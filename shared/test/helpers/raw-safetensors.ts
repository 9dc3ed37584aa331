// Builds safetensors bytes by hand, bypassing serializeSafetensors, so tests can produce the
// malformed and foreign-layout files that the serializer would never write.

/** 8-byte little-endian length prefix + header text (padded with spaces to `pad`) + data. */
export function rawSafetensors(
  header: string | object,
  data: Uint8Array | number = 0,
  options: { declaredLength?: bigint; pad?: number } = {},
): Uint8Array {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const json = new TextEncoder().encode(text);
  const pad = options.pad ?? 1;
  const headerLength = Math.ceil(json.byteLength / pad) * pad;
  const dataBytes = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + headerLength + dataBytes.byteLength);
  new DataView(out.buffer).setBigUint64(0, options.declaredLength ?? BigInt(headerLength), true);
  out.fill(0x20, 8, 8 + headerLength);
  out.set(json, 8);
  out.set(dataBytes, 8 + headerLength);
  return out;
}

export function f32Bytes(...values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}
