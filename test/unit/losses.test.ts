/**
 * GAN losses against values worked out by hand, and their stability at
 * large logits. softplus(x) = ln(1 + eˣ); D = σ(l).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { initBackend } from '../../src/shared/compute/backend.js';
import { tf } from '../../src/shared/compute/tf.js';
import { bernoulliEntropy, discriminatorAccuracy, discriminatorLoss, generatorLoss } from '../../src/shared/gan/losses.js';

let tensorsBefore = 0;
before(async () => {
  await initBackend('cpu', { log: () => {} });
  tensorsBefore = tf.memory().numTensors;
});

/** Runs fn on column tensors built from the arrays and returns the scalar result. */
function value(fn: (...t: tf.Tensor[]) => tf.Tensor, ...cols: number[][]): number {
  return tf.tidy(() => fn(...cols.map((c) => tf.tensor2d(c, [c.length, 1]))).dataSync()[0]!);
}

const close = (actual: number, expected: number, tol = 1e-6): void =>
  assert.ok(Math.abs(actual - expected) <= tol * Math.max(1, Math.abs(expected)), `${actual} ≠ ${expected}`);

describe('discriminator loss −½[E log D(x) + E log(1 − D(G(z)))]', () => {
  it('is ln 2 when D is undecided (all logits 0)', () => {
    // ½[softplus(0) + softplus(0)] = ½[ln 2 + ln 2] = 0.693147
    close(value((r, f) => discriminatorLoss(r!, f!), [0, 0], [0, 0, 0]), Math.LN2);
  });

  it('matches the hand-computed value for real logit 2, fake logit −1', () => {
    // −log σ(2) = softplus(−2) = ln(1 + e^−2) = 0.126928
    // −log(1 − σ(−1)) = softplus(−1) = ln(1 + e^−1) = 0.313262
    // ½(0.126928 + 0.313262) = 0.220095
    close(value((r, f) => discriminatorLoss(r!, f!), [2], [-1]), 0.220095);
  });

  it('averages over the batch', () => {
    // real {2, 0}: (0.126928 + 0.693147)/2 = 0.410038; fake {−1, 0}: (0.313262 + 0.693147)/2 = 0.503205
    // ½(0.410038 + 0.503205) = 0.456621
    close(value((r, f) => discriminatorLoss(r!, f!), [2, 0], [-1, 0]), 0.456621);
  });

  it('uses target 1 − s for reals under one-sided label smoothing s = 0.1', () => {
    // real 2: 0.9·softplus(−2) + 0.1·softplus(2) = 0.9·0.126928 + 0.1·2.126928 = 0.114235 + 0.212693 = 0.326928
    // fake −1 (unsmoothed): 0.313262;  ½(0.326928 + 0.313262) = 0.320095
    close(value((r, f) => discriminatorLoss(r!, f!, 0.1), [2], [-1]), 0.320095);
  });
});

describe('generator loss −E log D(G(z)) + λ·H[D]', () => {
  it('is the non-saturating loss when λ = 0', () => {
    // −log σ(−1) = softplus(1) = ln(1 + e) = 1.313262
    close(value((f) => generatorLoss(f!), [-1]), 1.313262);
  });

  it('adds λ times the Bernoulli entropy of D on fakes', () => {
    // p = σ(−1) = 0.268941; H = −p ln p − (1−p) ln(1−p) = 0.268941·1.313262 + 0.731059·0.313262
    //   = 0.353190 + 0.229013 = 0.582203 nats;  1.313262 + 0.5·0.582203 = 1.604364
    close(value((f) => bernoulliEntropy(f!), [-1]), 0.582203);
    close(value((f) => generatorLoss(f!, 0.5), [-1]), 1.604364);
    // Entropy peaks at ln 2 for l = 0.
    close(value((f) => bernoulliEntropy(f!), [0]), Math.LN2);
  });
});

describe('stability at large logits', () => {
  for (const big of [100, 1e4]) {
    it(`losses and gradients stay finite at |l| = ${big}`, () => {
      // Confident and right: losses → 0. Confident and wrong: losses → |l|.
      close(value((r, f) => discriminatorLoss(r!, f!), [big], [-big]), 0);
      close(value((r, f) => discriminatorLoss(r!, f!), [-big], [big]), big);
      close(value((f) => generatorLoss(f!, 1), [-big]), big);
      close(value((f) => generatorLoss(f!, 1), [big]), 0);
      close(value((f) => bernoulliEntropy(f!), [big]), 0);
      const grads = tf.tidy(() => {
        const r = tf.tensor2d([big, -big], [2, 1]);
        const f = tf.tensor2d([big, -big], [2, 1]);
        const [gr, gf] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.add(discriminatorLoss(a, b, 0.1), generatorLoss(b, 0.5)))([r, f]);
        return [...gr!.dataSync(), ...gf!.dataSync()];
      });
      assert.ok(grads.every(Number.isFinite), `gradients ${grads}`);
      // Real i's share of the smoothed D loss is ¼[0.9·softplus(−lᵢ) + 0.1·softplus(lᵢ)], so
      // ∂/∂lᵢ = ¼[−0.9·σ(−lᵢ) + 0.1·σ(lᵢ)]; at lᵢ = −big: ¼(−0.9·1 + 0.1·0) = −0.225.
      close(grads[1]!, -0.225, 1e-6);
    });
  }
});

describe('discriminator accuracy at 0.5', () => {
  it('counts reals with D > 0.5 and fakes with D < 0.5; exactly 0.5 is wrong', () => {
    const [real, fake] = tf.tidy(() => {
      const acc = discriminatorAccuracy(tf.tensor2d([1, -1, 0, 3], [4, 1]), tf.tensor2d([-2, 0.5], [2, 1]));
      return [acc.real.dataSync()[0]!, acc.fake.dataSync()[0]!];
    });
    assert.equal(real, 0.5); // 1 and 3 are right; −1 and 0 are not
    assert.equal(fake, 0.5); // −2 is right; 0.5 is not
  });
});

after(() => {
  assert.equal(tf.memory().numTensors, tensorsBefore, 'no tensor leaked');
});
