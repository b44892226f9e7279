/**
 * The PNG encoder, checked byte by byte against the spec and decoded by an
 * independent decoder (libvips through sharp); the image grid and scatter plot.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inflateSync } from 'node:zlib';
import sharp from 'sharp';
import { RING8 } from '../../src/shared/data/mixtures.js';
import { imageGrid, imageGridPng, scatterPlot, scatterPlotPng, toByte } from '../../src/shared/image/grid.js';
import { crc32, encodePng } from '../../src/shared/image/png.js';

interface Chunk {
  type: string;
  data: Buffer;
  crc: number;
}

function chunks(png: Buffer): Chunk[] {
  const out: Chunk[] = [];
  let o = 8;
  while (o < png.length) {
    const len = png.readUInt32BE(o);
    out.push({ type: png.toString('latin1', o + 4, o + 8), data: png.subarray(o + 8, o + 8 + len), crc: png.readUInt32BE(o + 8 + len) });
    o += 12 + len;
  }
  return out;
}

/** Decodes with libvips; its raw output of a greyscale PNG is RGB, so grey is taken from channel 0 after checking R = G = B. */
async function decode(png: Buffer): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const meta = await sharp(png).metadata();
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  if (meta.channels === 1 && info.channels === 3) {
    const grey = Buffer.alloc(info.width * info.height);
    for (let i = 0; i < grey.length; i++) {
      assert.ok(data[3 * i] === data[3 * i + 1] && data[3 * i] === data[3 * i + 2], 'grey decoded as colour');
      grey[i] = data[3 * i]!;
    }
    return { data: grey, width: info.width, height: info.height, channels: 1 };
  }
  return { data, width: info.width, height: info.height, channels: meta.channels ?? info.channels };
}

describe('crc32', () => {
  it('gives the standard check values', () => {
    assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926); // the CRC-32 check value
    assert.equal(crc32(Buffer.from('IEND')), 0xae426082); // the CRC every PNG ends with
    assert.equal(crc32(new Uint8Array(0)), 0);
  });
});

describe('encodePng', () => {
  it('writes signature, IHDR, IDAT and IEND with valid CRCs and unfiltered rows', () => {
    const data = new Uint8Array([0, 128, 255, 10, 20, 30]); // 3×2 grey
    const png = encodePng({ width: 3, height: 2, channels: 1, data });
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const cs = chunks(png);
    assert.deepEqual(
      cs.map((c) => c.type),
      ['IHDR', 'IDAT', 'IEND'],
    );
    for (const c of cs) assert.equal(c.crc, crc32(Buffer.concat([Buffer.from(c.type, 'latin1'), c.data])), c.type);
    const ihdr = cs[0]!.data;
    assert.equal(ihdr.readUInt32BE(0), 3);
    assert.equal(ihdr.readUInt32BE(4), 2);
    assert.deepEqual([...ihdr.subarray(8)], [8, 0, 0, 0, 0]); // depth 8, greyscale, deflate, filter set 0, no interlace
    assert.deepEqual([...inflateSync(cs[1]!.data)], [0, 0, 128, 255, 0, 10, 20, 30]);
    assert.equal(png.subarray(-4).readUInt32BE(0), 0xae426082);
  });

  it('round-trips grey and RGB through an independent decoder', async () => {
    const grey = new Uint8Array(17 * 5).map((_, i) => (i * 37) & 255);
    const g = await decode(encodePng({ width: 17, height: 5, channels: 1, data: grey }));
    assert.deepEqual([g.width, g.height, g.channels], [17, 5, 1]);
    assert.deepEqual([...g.data], [...grey]);
    const rgb = new Uint8Array(4 * 6 * 3).map((_, i) => (i * 11 + 3) & 255);
    const c = await decode(encodePng({ width: 4, height: 6, channels: 3, data: rgb }));
    assert.deepEqual([c.width, c.height, c.channels], [4, 6, 3]);
    assert.deepEqual([...c.data], [...rgb]);
  });

  it('refuses inconsistent sizes', () => {
    assert.throws(() => encodePng({ width: 3, height: 2, channels: 1, data: new Uint8Array(5) }), /5 bytes for 3×2×1/);
    assert.throws(() => encodePng({ width: 0, height: 2, channels: 1, data: new Uint8Array(0) }), RangeError);
    assert.throws(() => encodePng({ width: 1, height: 1, channels: 2 as 1, data: new Uint8Array(2) }), RangeError);
  });
});

describe('imageGrid', () => {
  it('maps [-1, 1] to bytes and tiles images row by row with padding', async () => {
    assert.deepEqual([-1, 0, 1, -5, 5].map(toByte), [0, 128, 255, 0, 255]);
    // Five 2×2 grey images, image k filled with value −1 + k/2 → bytes 0, 64, 128, 191, 255.
    const n = 5;
    const images = new Float32Array(n * 4);
    for (let k = 0; k < n; k++) images.fill(-1 + k / 2, k * 4, (k + 1) * 4);
    const grid = imageGrid(images, n, [2, 2, 1], { padding: 1, background: 7 });
    // ⌈√5⌉ = 3 columns, 2 rows: width 3·2 + 4 = 10, height 2·2 + 3 = 7.
    assert.deepEqual([grid.width, grid.height, grid.channels], [10, 7, 1]);
    const at = (x: number, y: number): number => grid.data[y * grid.width + x]!;
    assert.equal(at(0, 0), 7); // padding
    assert.equal(at(1, 1), 0); // image 0
    assert.equal(at(4, 2), 64); // image 1: x0 = 1 + 3
    assert.equal(at(7, 1), 128); // image 2: x0 = 7
    assert.equal(at(1, 4), 191); // image 3: second row, y0 = 1 + 3
    assert.equal(at(5, 5), 255); // image 4
    assert.equal(at(8, 4), 7); // the empty sixth tile
    const decoded = await decode(imageGridPng(images, n, [2, 2, 1], { padding: 1, background: 7 }));
    assert.deepEqual([...decoded.data], [...grid.data]);
  });

  it('keeps RGB channels and magnifies by an integer scale', () => {
    const img = new Float32Array([1, -1, -1, -1, 1, -1]); // 1×2 RGB: red, green
    const grid = imageGrid(img, 1, [1, 2, 3], { padding: 0, scale: 2 });
    assert.deepEqual([grid.width, grid.height, grid.channels], [4, 2, 3]);
    assert.deepEqual([...grid.data.subarray(0, 12)], [255, 0, 0, 255, 0, 0, 0, 255, 0, 0, 255, 0]);
    assert.throws(() => imageGrid(img, 2, [1, 2, 3]), /6 floats for 2 images/);
  });
});

describe('scatterPlot', () => {
  it('draws samples as blue dots and modes as red 3σ rings on white', async () => {
    const plot = scatterPlot(new Float32Array([0.5, 0.5]), { size: 111, extent: 1, modes: RING8 });
    const px = (v: number): number => Math.round(((v + 1) / 2) * 110);
    const py = (v: number): number => Math.round(((1 - v) / 2) * 110);
    const rgb = (x: number, y: number): number[] => [...plot.data.subarray((y * 111 + x) * 3, (y * 111 + x) * 3 + 3)];
    assert.deepEqual(rgb(px(0.5), py(0.5)), [30, 80, 200]);
    assert.deepEqual(rgb(px(-0.5), py(0.5)), [255, 255, 255]);
    // A point on the first mode's ring: centre (0.8, 0) shifted right by 3σ = 0.06 ≈ 3.3 px.
    const r = Math.max(2, ((3 * RING8.sigma) / 2) * 110);
    assert.deepEqual(rgb(Math.round(px(0.8) + r), py(0)), [220, 30, 30]);
    const decoded = await decode(scatterPlotPng(new Float32Array([0.5, 0.5]), { size: 111, extent: 1, modes: RING8 }));
    assert.deepEqual([decoded.width, decoded.height, decoded.channels], [111, 111, 3]);
    assert.ok(Buffer.from(plot.data).equals(decoded.data));
  });
});
