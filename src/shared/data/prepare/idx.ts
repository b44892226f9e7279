/**
 * IDX files, the format of MNIST and Fashion-MNIST, plain or gzipped
 * (detected from the content, not the name).
 *
 * Layout: two zero bytes, a type byte, a dimension count d, then d big-endian
 * uint32 sizes, then prod(sizes) values of that type, big-endian, row-major.
 * Only uint8 data (type 0x08) is read: that is what image and label files use.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { DatasetError } from '../../errors.js';

const TYPE_NAMES: Record<number, string> = {
  0x08: 'uint8',
  0x09: 'int8',
  0x0b: 'int16',
  0x0c: 'int32',
  0x0d: 'float32',
  0x0e: 'float64',
};

export interface IdxHeader {
  /** Type byte, e.g. 0x08 for uint8. */
  type: number;
  /** Sizes, outermost first: [count, height, width] for an image file. */
  dims: number[];
  /** Bytes before the data: 4 + 4·dims.length. */
  headerBytes: number;
}

/**
 * Parses the header at the start of `buf`. Returns null when `buf` is too
 * short to hold the whole header yet; throws DatasetError (naming `source`)
 * when it is not an IDX header.
 */
export function parseIdxHeader(buf: Uint8Array, source: string): IdxHeader | null {
  if (buf.length < 4) return null;
  if (buf[0] !== 0 || buf[1] !== 0) {
    const got = Array.from(buf.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new DatasetError(`${source} is not an IDX file: bad magic ${got} (expected 00 00 <type> <dims>)`);
  }
  const type = buf[2]!;
  const ndims = buf[3]!;
  if (TYPE_NAMES[type] === undefined) {
    throw new DatasetError(`${source}: unknown IDX type byte 0x${type.toString(16).padStart(2, '0')}`);
  }
  if (ndims < 1 || ndims > 4) throw new DatasetError(`${source}: IDX dimension count ${ndims} is not in 1..4`);
  const headerBytes = 4 + 4 * ndims;
  if (buf.length < headerBytes) return null;
  const view = new DataView(buf.buffer, buf.byteOffset, headerBytes);
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++) dims.push(view.getUint32(4 + 4 * i, false));
  if (type !== 0x08) {
    throw new DatasetError(`${source}: IDX data type ${TYPE_NAMES[type]} (0x${type.toString(16)}) is not supported; only uint8 (0x08) is`);
  }
  if (dims.some((d) => d === 0)) throw new DatasetError(`${source}: IDX dimensions ${dims.join('×')} include a zero`);
  return { type, dims, headerBytes };
}

/** Opens the file, gunzipping when it starts with the gzip magic 1f 8b. */
async function openStream(path: string): Promise<Readable> {
  let magic: Buffer;
  try {
    const fh = await open(path, 'r');
    try {
      magic = Buffer.alloc(2);
      await fh.read(magic, 0, 2, 0);
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw new DatasetError(`cannot read IDX file ${path}: ${(err as Error).message}`, { cause: err });
  }
  const raw = createReadStream(path, { highWaterMark: 1 << 20 });
  if (magic[0] === 0x1f && magic[1] === 0x8b) {
    const gunzip = createGunzip();
    raw.on('error', (e) => gunzip.destroy(e));
    return raw.pipe(gunzip);
  }
  return raw;
}

export interface IdxRecords {
  header: IdxHeader;
  /** Bytes per record: the product of all dimensions but the first. */
  recordBytes: number;
  /** Number of records: dims[0]. */
  count: number;
  /** Yields the records in order, each a Uint8Array of recordBytes (a view; copy it to keep it). */
  records: AsyncGenerator<Uint8Array, void, void>;
  /** Releases the file when the records are not read to the end. */
  close(): void;
}

/**
 * Streams an IDX file record by record (a record is one image or one label),
 * so that files larger than memory can be read. A truncated file or trailing
 * bytes throw DatasetError when reached.
 */
export async function openIdx(path: string): Promise<IdxRecords> {
  const stream = await openStream(path);
  const it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let pending: Buffer = Buffer.alloc(0);
  const next = async (): Promise<Buffer | null> => {
    try {
      const r = await it.next();
      return r.done === true ? null : r.value;
    } catch (err) {
      throw new DatasetError(`${path}: cannot decompress or read (${(err as Error).message})`, { cause: err });
    }
  };
  let header: IdxHeader | null = null;
  while (header === null) {
    header = parseIdxHeader(pending, path);
    if (header !== null) break;
    const chunk = await next();
    if (chunk === null) {
      stream.destroy();
      throw new DatasetError(`${path}: file ends inside the IDX header (${pending.length} bytes)`);
    }
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
  }
  const h = header;
  pending = pending.subarray(h.headerBytes);
  const count = h.dims[0]!;
  const recordBytes = h.dims.slice(1).reduce((a, b) => a * b, 1);

  async function* records(): AsyncGenerator<Uint8Array, void, void> {
    let done = 0;
    try {
      while (done < count) {
        while (pending.length < recordBytes) {
          const chunk = await next();
          if (chunk === null) {
            throw new DatasetError(`${path}: truncated: header promises ${count} records of ${recordBytes} bytes, file holds ${done}`);
          }
          pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        }
        let off = 0;
        while (done < count && pending.length - off >= recordBytes) {
          yield pending.subarray(off, off + recordBytes);
          off += recordBytes;
          done++;
        }
        pending = pending.subarray(off);
      }
      let extra = pending.length;
      for (let chunk = await next(); chunk !== null; chunk = await next()) extra += chunk.length;
      if (extra > 0) throw new DatasetError(`${path}: ${extra} bytes after the ${count} records the header promises`);
    } finally {
      stream.destroy();
    }
  }
  return { header: h, recordBytes, count, records: records(), close: () => stream.destroy() };
}

/** Reads a whole IDX file (labels, small image sets) into one Uint8Array. */
export async function readIdx(path: string): Promise<{ header: IdxHeader; data: Uint8Array }> {
  const f = await openIdx(path);
  const data = new Uint8Array(f.count * f.recordBytes);
  let off = 0;
  for await (const r of f.records) {
    data.set(r, off);
    off += r.length;
  }
  return { header: f.header, data };
}
