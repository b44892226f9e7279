/**
 * Exports the generator as a standard tfjs LayersModel folder:
 *
 *   <runDir>/generator/model.json     topology + weights manifest (format 'layers-model')
 *   <runDir>/generator/weights.bin    float32 weights, little-endian, manifest order
 *
 * Plain tfjs loads it with `tf.loadLayersModel('http://…/model.json')` (or
 * `file://` under tfjs-node); no distgan code is needed. The model maps
 * z ~ N(0, I) of shape [n, latentDim] to samples in [-1, 1]; model.json's
 * userDefinedMetadata.distgan records the spec and latent size.
 *
 * The folder is written atomically: everything goes to a temporary folder
 * beside it, is fsynced, and is renamed into place, so a reader never sees a
 * half-written model. (An existing folder is first renamed aside, so for an
 * instant no generator/ exists; it never holds a mix of two versions.)
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { tf, tfl } from '../compute/tf.js';
import type { ModelSpec } from '../models/spec.js';
import { DiskFullError } from '../errors.js';

type LayersModel = ReturnType<typeof tfl.sequential>;

/** File names inside the exported folder. */
export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';
export const GENERATOR_DIR = 'generator';

async function writeSynced(file: string, data: string | Uint8Array): Promise<void> {
  const fh = await open(file, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Saves any tfjs LayersModel as `<targetDir>` (model.json + weights.bin),
 * atomically replacing what was there. Returns the folder's path.
 */
export async function saveLayersModelFolder(model: LayersModel, targetDir: string, metadata?: object): Promise<string> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (artifacts?.weightSpecs === undefined || artifacts.weightData === undefined) {
    throw new Error('export: tfjs returned no weights for the model');
  }
  const weights = new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts.weightData));
  const modelJson = {
    format: artifacts.format ?? 'layers-model',
    generatedBy: artifacts.generatedBy,
    convertedBy: artifacts.convertedBy ?? null,
    modelTopology: artifacts.modelTopology,
    weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs }],
    ...(metadata === undefined ? {} : { userDefinedMetadata: metadata }),
  };

  const target = path.resolve(targetDir);
  const parent = path.dirname(target);
  const tmp = await mkdtemp(path.join(parent, `.${path.basename(target)}.tmp-`));
  try {
    // mkdtemp makes 0700; the exported folder is as readable as the rest of the run folder.
    await chmod(tmp, 0o755);
    await writeSynced(path.join(tmp, WEIGHTS_BIN), weights);
    await writeSynced(path.join(tmp, MODEL_JSON), JSON.stringify(modelJson));
    await syncDir(tmp);
    const aside = `${target}.old-${randomBytes(4).toString('hex')}`;
    let movedAside = false;
    try {
      await rename(target, aside);
      movedAside = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    await rename(tmp, target);
    await syncDir(parent);
    if (movedAside) await rm(aside, { recursive: true, force: true });
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') throw new DiskFullError(`export to ${target}: the disk is full; the previous export (if any) is intact`, { cause: err });
    throw err;
  }
  return target;
}

/** What the exported model.json records about its origin, under userDefinedMetadata.distgan. */
export interface GeneratorMetadata {
  spec: ModelSpec;
  latentDim: number;
  sampleShape: readonly number[];
  /** Optimizer steps the weights have seen. */
  step: number;
}

/**
 * Writes the generator of a trainer (whose tf variables always hold its
 * current weights) to `<runDir>/generator/`. Returns that folder's path.
 */
export async function exportGenerator(
  trainer: { generator: LayersModel; spec: ModelSpec; latentDim: number; sampleShape: readonly number[]; step: number },
  runDir: string,
): Promise<string> {
  const metadata: GeneratorMetadata = {
    spec: trainer.spec,
    latentDim: trainer.latentDim,
    sampleShape: trainer.sampleShape,
    step: trainer.step,
  };
  return saveLayersModelFolder(trainer.generator, path.join(runDir, GENERATOR_DIR), { distgan: { ...metadata, outputRange: [-1, 1] } });
}
