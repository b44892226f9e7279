/**
 * Runs an async function over a sequence with up to `concurrency` calls in
 * flight and yields the results in input order. Decoding runs in libvips'
 * threads while the writer consumes finished results, and memory stays
 * bounded by the window (at most `concurrency` results wait for an earlier,
 * slower one).
 */
export type Settled<R> = { ok: true; value: R } | { ok: false; error: unknown };

export async function* mapOrdered<T, R>(
  items: AsyncIterable<T> | Iterable<T>,
  concurrency: number,
  fn: (item: T, i: number) => Promise<R>,
): AsyncGenerator<Settled<R>, void, void> {
  const window: Array<Promise<Settled<R>>> = [];
  let i = 0;
  const start = (item: T): void => {
    const idx = i++;
    // Settled values, never rejections: a failure is data for the caller
    // (a corrupt file is skipped) and no promise is left unhandled.
    window.push(
      fn(item, idx).then(
        (value): Settled<R> => ({ ok: true, value }),
        (error: unknown): Settled<R> => ({ ok: false, error }),
      ),
    );
  };
  for await (const item of items as AsyncIterable<T>) {
    start(item);
    if (window.length >= Math.max(1, concurrency)) yield await window.shift()!;
  }
  while (window.length > 0) yield await window.shift()!;
}
