/**
 * A network's variables in a fixed positional order, and the flat
 * Float32Array layout built on it that gradients, weights, Adam moments and
 * BN statistics use on the wire and in checkpoints.
 *
 * Order: layers in model order; within a layer, trainable variables by role
 * (kernel, bias, gamma, beta), and separately the non-trainable BN state
 * (moving_mean, moving_variance). tfjs variable names are never used as keys:
 * they come from a process-global counter ("g_dense/kernel_3") and differ
 * between processes that built the same model.
 *
 * Initial values are drawn here from the counter-based RNG, not by tfjs
 * initialisers, so two processes with the same seed build bit-identical
 * networks on any backend.
 */
import { tf, tfl } from '../compute/tf.js';
import { Rng, Stream } from '../rng.js';

export type VariableRole = 'kernel' | 'bias' | 'gamma' | 'beta' | 'moving_mean' | 'moving_variance';

const TRAINABLE_ROLES: readonly VariableRole[] = ['kernel', 'bias', 'gamma', 'beta'];
const STATE_ROLES: readonly VariableRole[] = ['moving_mean', 'moving_variance'];

export interface VariableInfo {
  /** Index of the owning layer in the model. */
  layer: number;
  role: VariableRole;
  shape: number[];
  /** Number of floats. */
  size: number;
}

export interface NetworkVariables {
  /** Trainable variables in positional order (the gradient layout). */
  trainable: tf.Variable[];
  trainableInfo: VariableInfo[];
  /** Non-trainable BN moving statistics in positional order (empty without BN). */
  state: tf.Variable[];
  stateInfo: VariableInfo[];
}

type LayersModel = ReturnType<typeof tfl.sequential>;
type LayerVariable = LayersModel['weights'][number];

function roleOf(v: LayerVariable): VariableRole {
  // originalName is "<layer>/<role>" (possibly under a name scope); only the role part is stable.
  const role = v.originalName.slice(v.originalName.lastIndexOf('/') + 1);
  if (!(TRAINABLE_ROLES as readonly string[]).includes(role) && !(STATE_ROLES as readonly string[]).includes(role)) {
    throw new Error(`variables: unexpected variable role ${JSON.stringify(role)} in ${v.originalName}`);
  }
  return role as VariableRole;
}

function ordered(list: LayerVariable[], roles: readonly VariableRole[], layer: number): Array<[tf.Variable, VariableInfo]> {
  return list
    .map((v) => [v, roleOf(v)] as const)
    .filter(([, role]) => roles.includes(role))
    .sort((a, b) => roles.indexOf(a[1]) - roles.indexOf(b[1]))
    .map(([v, role]) => {
      const variable = v.read() as tf.Variable;
      const shape = [...variable.shape];
      return [variable, { layer, role, shape, size: shape.reduce((x, y) => x * y, 1) }];
    });
}

/** Collects a built model's variables in positional order. */
export function networkVariables(model: LayersModel): NetworkVariables {
  const out: NetworkVariables = { trainable: [], trainableInfo: [], state: [], stateInfo: [] };
  model.layers.forEach((layer, index) => {
    for (const [v, info] of ordered(layer.weights, TRAINABLE_ROLES, index)) {
      out.trainable.push(v);
      out.trainableInfo.push(info);
    }
    for (const [v, info] of ordered(layer.weights, STATE_ROLES, index)) {
      out.state.push(v);
      out.stateInfo.push(info);
    }
  });
  return out;
}

/** Total floats of a list of variables. */
export function flatSize(infos: readonly Pick<VariableInfo, 'size'>[]): number {
  return infos.reduce((n, i) => n + i.size, 0);
}

/**
 * Concatenates tensors (read back synchronously) or arrays into one flat
 * Float32Array, in the order given. `out`, if passed, must have exactly the
 * total length.
 */
export function flattenInto(sources: ReadonlyArray<tf.Tensor | ArrayLike<number>>, out?: Float32Array): Float32Array {
  const parts = sources.map((s) => (s instanceof tf.Tensor ? (s.dataSync() as Float32Array) : s));
  const total = parts.reduce((n, p) => n + p.length, 0);
  const flat = out ?? new Float32Array(total);
  if (flat.length !== total) throw new RangeError(`flattenInto: out has ${flat.length} floats, the sources ${total}`);
  let offset = 0;
  for (const p of parts) {
    flat.set(p, offset);
    offset += p.length;
  }
  return flat;
}

/** The inverse of flattenInto: writes consecutive slices of `flat` into the variables, in order. */
export function writeFlat(flat: Float32Array, variables: readonly tf.Variable[]): void {
  const total = variables.reduce((n, v) => n + v.size, 0);
  if (flat.length !== total) throw new RangeError(`writeFlat: ${flat.length} floats given, the variables hold ${total}`);
  let offset = 0;
  for (const v of variables) {
    // A copy: a tensor built on a subarray view could alias memory the caller keeps mutating.
    const value = tf.tensor(flat.slice(offset, offset + v.size), v.shape, 'float32');
    v.assign(value);
    value.dispose();
    offset += v.size;
  }
}

/** Which network a variable belongs to, so G and D draw from distinct RNG streams. */
export const enum NetworkId {
  Generator = 0,
  Discriminator = 1,
}

/**
 * Initial values in the flat layout of `infos`: kernels Glorot-uniform
 * (limit √(6 / (fanIn + fanOut)), fans as Keras computes them) drawn from
 * Rng(seed, Stream.Init, network, variableIndex); biases and β 0; γ 1;
 * moving mean 0; moving variance 1.
 */
export function initialValues(infos: readonly VariableInfo[], seed: number, network: NetworkId): Float32Array {
  const flat = new Float32Array(flatSize(infos));
  let offset = 0;
  infos.forEach((info, index) => {
    const slice = flat.subarray(offset, offset + info.size);
    if (info.role === 'kernel') {
      const s = info.shape;
      const receptive = s.slice(0, -2).reduce((a, b) => a * b, 1);
      const fanIn = s[s.length - 2]! * receptive;
      const fanOut = s[s.length - 1]! * receptive;
      const limit = Math.sqrt(6 / (fanIn + fanOut));
      const rng = new Rng(seed, Stream.Init, network, index);
      for (let i = 0; i < slice.length; i++) slice[i] = (2 * rng.next() - 1) * limit;
    } else if (info.role === 'gamma' || info.role === 'moving_variance') {
      slice.fill(1);
    }
    offset += info.size;
  });
  return flat;
}
