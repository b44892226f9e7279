/**
 * Image folders: finding the image files under a directory tree and decoding
 * one into a fixed R×R×C uint8 sample with sharp (libvips).
 *
 * The walk is sorted (by code unit, not locale) so that the same tree always
 * gives the same sample order and therefore the same fingerprint. Entries whose
 * name starts with "." are ignored (.git, .DS_Store, editors' temp files).
 */
import { readdir, realpath, stat } from 'node:fs/promises';
import { extname, join, relative } from 'node:path';
import sharp, { type OutputInfo } from 'sharp';
import { DatasetError } from '../../errors.js';

/** Extensions (lower-cased) that prepare decodes; anything else is reported as unsupported. */
export const IMAGE_EXTENSIONS: readonly string[] = ['.png', '.jpg', '.jpeg', '.webp'];

export interface SkippedFile {
  /** Path relative to the input directory. */
  file: string;
  /** 'unsupported': not an image prepare reads; 'corrupt': an image that failed to decode. */
  kind: 'unsupported' | 'corrupt';
  reason: string;
}

export interface ImageListing {
  /** Absolute paths of candidate images, in dataset order. */
  files: string[];
  /** Files that are not images prepare reads. */
  unsupported: SkippedFile[];
}

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Lists the images under `root`, following symbolic links (each real
 * directory is visited once, so link cycles terminate).
 */
export async function listImageFiles(root: string): Promise<ImageListing> {
  const files: string[] = [];
  const unsupported: SkippedFile[] = [];
  const visited = new Set<string>();

  async function walk(dir: string): Promise<void> {
    const real = await realpath(dir);
    if (visited.has(real)) return;
    visited.add(real);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      unsupported.push({ file: relative(root, dir) || '.', kind: 'unsupported', reason: `unreadable directory (${(err as NodeJS.ErrnoException).code ?? err})` });
      return;
    }
    names.sort(byCodeUnit);
    for (const name of names) {
      if (name.startsWith('.')) continue;
      const path = join(dir, name);
      let st;
      try {
        st = await stat(path);
      } catch (err) {
        unsupported.push({ file: relative(root, path), kind: 'unsupported', reason: `cannot stat (${(err as NodeJS.ErrnoException).code ?? err}), e.g. a dangling link` });
        continue;
      }
      if (st.isDirectory()) await walk(path);
      else if (!st.isFile()) unsupported.push({ file: relative(root, path), kind: 'unsupported', reason: 'not a regular file' });
      else if (IMAGE_EXTENSIONS.includes(extname(name).toLowerCase())) files.push(path);
      else unsupported.push({ file: relative(root, path), kind: 'unsupported', reason: `unsupported file type "${extname(name) || '(no extension)'}" (reads ${IMAGE_EXTENSIONS.join(' ')})` });
    }
  }

  await walk(root);
  return { files, unsupported };
}

/**
 * Decodes one image into R×R×C uint8 HWC bytes: EXIF orientation applied,
 * transparency flattened onto black, the largest centred square cropped and
 * resized to R×R (Lanczos), converted to grey (C=1) or sRGB (C=3).
 * Throws DatasetError with the decoder's reason for a corrupt or truncated file.
 */
export async function decodeImage(input: string | Buffer, resolution: number, channels: 1 | 3): Promise<Buffer> {
  let out: { data: Buffer; info: OutputInfo };
  try {
    // failOn 'warning': a truncated or damaged file is rejected rather than
    // silently padded with grey.
    let p = sharp(input, { failOn: 'warning' })
      .autoOrient()
      .resize(resolution, resolution, { fit: 'cover', position: 'centre' })
      .flatten({ background: '#000000' });
    p = channels === 1 ? p.toColourspace('b-w') : p.toColourspace('srgb');
    out = await p.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0] ?? String(err);
    throw new DatasetError(`cannot decode: ${msg}`, { cause: err });
  }
  const { data, info } = out;
  if (info.width !== resolution || info.height !== resolution || info.channels !== channels) {
    throw new DatasetError(`decoded to ${info.width}×${info.height}×${info.channels}, expected ${resolution}×${resolution}×${channels}`);
  }
  return data;
}

/**
 * Resizes/converts a raw uint8 sample (e.g. an IDX record) to R×R×C, with the
 * same cropping rule as decodeImage.
 */
export async function convertRaw(
  data: Uint8Array,
  from: { height: number; width: number; channels: 1 | 3 },
  resolution: number,
  channels: 1 | 3,
): Promise<Buffer> {
  if (from.height === resolution && from.width === resolution && from.channels === channels) return Buffer.from(data);
  let p = sharp(data, { raw: { width: from.width, height: from.height, channels: from.channels } });
  if (from.height !== resolution || from.width !== resolution) p = p.resize(resolution, resolution, { fit: 'cover', position: 'centre' });
  p = channels === 1 ? p.toColourspace('b-w') : p.toColourspace('srgb');
  const { data: out, info } = await p.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  if (info.channels === channels) return out;
  // A grey raw input can stay 1-channel through toColourspace('srgb'): widen it here.
  if (info.channels === 1 && channels === 3) {
    const wide = Buffer.allocUnsafe(out.length * 3);
    for (let i = 0; i < out.length; i++) wide[3 * i] = wide[3 * i + 1] = wide[3 * i + 2] = out[i]!;
    return wide;
  }
  throw new DatasetError(`converted sample has ${info.channels} channels, expected ${channels}`);
}
