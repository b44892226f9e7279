/**
 * A minimal PNG encoder (8-bit greyscale or RGB, no interlace) on node:zlib,
 * enough for sample grids and plots without a native image library.
 *
 * Layout: signature, IHDR, one IDAT holding the zlib stream of the filtered
 * scanlines, IEND; each chunk is length, type, data and the CRC-32 of
 * type + data (PNG spec, ISO/IEC 15948). Every scanline uses filter 0 (None).
 */
import { deflateSync } from 'node:zlib';

export interface RawImage {
  width: number;
  height: number;
  /** 1 = greyscale, 3 = RGB. */
  channels: 1 | 3;
  /** height × width × channels bytes, row-major, top row first. */
  data: Uint8Array;
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE 802.3 polynomial, as PNG and zlib use), unsigned. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** Encodes an image as PNG bytes. Throws RangeError on inconsistent sizes. */
export function encodePng(img: RawImage): Buffer {
  const { width, height, channels, data } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || width > 0x7fffffff || height > 0x7fffffff) {
    throw new RangeError(`encodePng: size ${width}×${height} is not positive integers`);
  }
  if (channels !== 1 && channels !== 3) throw new RangeError(`encodePng: ${channels} channels (need 1 or 3)`);
  const stride = width * channels;
  if (data.length !== stride * height) {
    throw new RangeError(`encodePng: ${data.length} bytes for ${width}×${height}×${channels} (need ${stride * height})`);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = channels === 1 ? 0 : 2; // colour type: greyscale / truecolour
  ihdr[10] = 0; // deflate
  ihdr[11] = 0; // adaptive filtering
  ihdr[12] = 0; // no interlace
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (stride + 1)] = 0;
    raw.set(data.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  }
  return Buffer.concat([SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0))]);
}
