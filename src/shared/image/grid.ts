/**
 * Sample pictures as PNG: a tiled grid of images, or a scatter plot of 2-D
 * points. The PNG encoder is node:zlib plus a CRC table (no image library is
 * needed on the coordinator's hot path).
 */
import { deflateSync } from 'node:zlib';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** Encodes 8-bit gray (channels 1) or RGB (channels 3) pixels, row-major. */
export function encodePng(pixels: Uint8Array, width: number, height: number, channels: 1 | 3): Buffer {
  if (pixels.length !== width * height * channels) throw new RangeError(`encodePng: ${pixels.length} bytes for ${width}×${height}×${channels}`);
  const stride = width * channels;
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (stride + 1)] = 0; // filter: none
    raw.set(pixels.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = channels === 1 ? 0 : 2;
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([sig, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0))]);
}

const toByte = (v: number): number => Math.max(0, Math.min(255, Math.round((v + 1) * 127.5)));

/** Tiles n images (values in [-1, 1], HWC) into a near-square grid with 2-pixel gutters. */
export function imageGridPng(data: Float32Array, n: number, h: number, w: number, c: 1 | 3): Buffer {
  const cols = Math.ceil(Math.sqrt(n));
  const rows = Math.ceil(n / cols);
  const pad = 2;
  const W = cols * (w + pad) + pad;
  const H = rows * (h + pad) + pad;
  const px = new Uint8Array(W * H * c).fill(40);
  for (let i = 0; i < n; i++) {
    const ox = pad + (i % cols) * (w + pad);
    const oy = pad + Math.floor(i / cols) * (h + pad);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        for (let k = 0; k < c; k++) px[((oy + y) * W + ox + x) * c + k] = toByte(data[((i * h + y) * w + x) * c + k]!);
      }
    }
  }
  // Small images are hard to see; scale up to at least ~512 px wide by pixel repetition.
  const scale = Math.max(1, Math.floor(512 / W));
  if (scale === 1) return encodePng(px, W, H, c);
  const big = new Uint8Array(W * scale * H * scale * c);
  for (let y = 0; y < H * scale; y++) {
    for (let x = 0; x < W * scale; x++) {
      const src = ((Math.floor(y / scale) * W) + Math.floor(x / scale)) * c;
      for (let k = 0; k < c; k++) big[(y * W * scale + x) * c + k] = px[src + k]!;
    }
  }
  return encodePng(big, W * scale, H * scale, c);
}

/** A 512×512 scatter plot of 2-D points (first two coordinates), axes spanning [-range, range]. */
export function scatterPng(data: Float32Array, n: number, dim: number, range = 3): Buffer {
  const S = 512;
  const px = new Uint8Array(S * S * 3).fill(250);
  const put = (x: number, y: number, r: number, g: number, b: number): void => {
    if (x < 0 || y < 0 || x >= S || y >= S) return;
    const i = (y * S + x) * 3;
    px[i] = r;
    px[i + 1] = g;
    px[i + 2] = b;
  };
  for (let i = 0; i < S; i++) {
    put(i, S / 2, 200, 200, 200);
    put(S / 2, i, 200, 200, 200);
  }
  for (let i = 0; i < n; i++) {
    const x = Math.round(((data[i * dim]! + range) / (2 * range)) * (S - 1));
    const y = Math.round(((range - data[i * dim + 1]!) / (2 * range)) * (S - 1));
    for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) put(x + dx, y + dy, 30, 90, 200);
  }
  return encodePng(px, S, S, 3);
}
