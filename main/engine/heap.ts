// A binary min-heap that knows where each element is, so an element can be removed or re-sorted
// after its key changed in O(log n). The scheduling policy keeps its queues in these.
export class IndexedHeap<T> {
  private readonly items: T[] = [];
  private readonly pos = new Map<T, number>();

  /** `less(a, b)`: a comes out before b. */
  constructor(private readonly less: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  has(x: T): boolean {
    return this.pos.has(x);
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(x: T): void {
    if (this.pos.has(x)) return this.update(x);
    this.items.push(x);
    this.pos.set(x, this.items.length - 1);
    this.up(this.items.length - 1);
  }

  pop(): T | undefined {
    const top = this.items[0];
    if (top !== undefined) this.remove(top);
    return top;
  }

  remove(x: T): boolean {
    const i = this.pos.get(x);
    if (i === undefined) return false;
    const last = this.items.pop()!;
    this.pos.delete(x);
    if (i < this.items.length) {
      this.items[i] = last;
      this.pos.set(last, i);
      this.down(i);
      this.up(i);
    }
    return true;
  }

  /** Re-sorts an element whose key changed. */
  update(x: T): void {
    const i = this.pos.get(x);
    if (i === undefined) return;
    this.up(i);
    this.down(this.pos.get(x)!);
  }

  *[Symbol.iterator](): IterableIterator<T> {
    yield* this.items;
  }

  private up(i: number): void {
    const { items } = this;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(items[i]!, items[parent]!)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    const { items } = this;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let best = i;
      if (l < items.length && this.less(items[l]!, items[best]!)) best = l;
      if (r < items.length && this.less(items[r]!, items[best]!)) best = r;
      if (best === i) return;
      this.swap(i, best);
      i = best;
    }
  }

  private swap(a: number, b: number): void {
    const { items, pos } = this;
    const x = items[a]!;
    const y = items[b]!;
    items[a] = y;
    items[b] = x;
    pos.set(y, a);
    pos.set(x, b);
  }
}
