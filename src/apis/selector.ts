// Calico's label selector language, as PacketCapture.spec.selector takes it:
//   all()  has(k)  !has(k)  k == "v"  k != "v"  k in {"a","b"}  k not in {..}
//   k contains "s"  k starts with "s"  k ends with "s"  !  &&  ||  ( )
// Semantics follow Calico: `!=` and `not in` also match pods that lack the label.

export type Labels = Readonly<Record<string, string>>;

export type SelectorNode =
  | { op: 'all' }
  | { op: 'has'; key: string }
  | { op: 'eq' | 'ne' | 'contains' | 'startsWith' | 'endsWith'; key: string; value: string }
  | { op: 'in' | 'notIn'; key: string; values: string[] }
  | { op: 'not'; operand: SelectorNode }
  | { op: 'and' | 'or'; operands: SelectorNode[] };

export class SelectorSyntaxError extends Error {
  constructor(
    readonly selector: string,
    readonly position: number,
    detail: string,
  ) {
    super(`invalid selector ${JSON.stringify(selector)} at position ${position}: ${detail}`);
  }
}

type Token =
  | { kind: 'label'; text: string; pos: number }
  | { kind: 'string'; text: string; pos: number }
  | { kind: 'punct'; text: string; pos: number }
  | { kind: 'end'; text: ''; pos: number };

const LABEL = /[A-Za-z0-9_./-]/;
const PUNCT = ['&&', '||', '==', '!=', '(', ')', '{', '}', ',', '!'];

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '"' || c === "'") {
      const end = source.indexOf(c, i + 1);
      if (end < 0) throw new SelectorSyntaxError(source, i, 'unterminated string');
      tokens.push({ kind: 'string', text: source.slice(i + 1, end), pos: i });
      i = end + 1;
    } else if (LABEL.test(c)) {
      const start = i;
      while (i < source.length && LABEL.test(source[i]!)) i++;
      tokens.push({ kind: 'label', text: source.slice(start, i), pos: start });
    } else {
      const punct = PUNCT.find((p) => source.startsWith(p, i));
      if (!punct) throw new SelectorSyntaxError(source, i, `unexpected character ${JSON.stringify(c)}`);
      tokens.push({ kind: 'punct', text: punct, pos: i });
      i += punct.length;
    }
  }
  tokens.push({ kind: 'end', text: '', pos: source.length });
  return tokens;
}

class Parser {
  private index = 0;
  constructor(
    private readonly source: string,
    private readonly tokens: Token[],
  ) {}

  parse(): SelectorNode {
    if (this.peek().kind === 'end') return { op: 'all' }; // Calico treats "" as all()
    const node = this.parseOr();
    if (this.peek().kind !== 'end') this.fail(`unexpected ${JSON.stringify(this.peek().text)}`);
    return node;
  }

  private parseOr(): SelectorNode {
    const operands = [this.parseAnd()];
    while (this.acceptPunct('||')) operands.push(this.parseAnd());
    return operands.length === 1 ? operands[0]! : { op: 'or', operands };
  }

  private parseAnd(): SelectorNode {
    const operands = [this.parseUnary()];
    while (this.acceptPunct('&&')) operands.push(this.parseUnary());
    return operands.length === 1 ? operands[0]! : { op: 'and', operands };
  }

  private parseUnary(): SelectorNode {
    if (this.acceptPunct('!')) return { op: 'not', operand: this.parseUnary() };
    if (this.acceptPunct('(')) {
      const inner = this.parseOr();
      this.expectPunct(')');
      return inner;
    }
    return this.parseTerm();
  }

  private parseTerm(): SelectorNode {
    const word = this.expectLabel();
    if ((word === 'all' || word === 'global') && this.acceptPunct('(')) {
      this.expectPunct(')');
      return { op: 'all' }; // global() only differs for Calico host endpoints; pods are never global.
    }
    if (word === 'has' && this.acceptPunct('(')) {
      const key = this.expectLabel();
      this.expectPunct(')');
      return { op: 'has', key };
    }
    return this.parseComparison(word);
  }

  private parseComparison(key: string): SelectorNode {
    if (this.acceptPunct('==')) return { op: 'eq', key, value: this.expectString() };
    if (this.acceptPunct('!=')) return { op: 'ne', key, value: this.expectString() };
    if (this.acceptWord('in')) return { op: 'in', key, values: this.parseSet() };
    if (this.acceptWord('not')) {
      if (!this.acceptWord('in')) this.fail('expected "in" after "not"');
      return { op: 'notIn', key, values: this.parseSet() };
    }
    if (this.acceptWord('contains')) return { op: 'contains', key, value: this.expectString() };
    if (this.acceptWord('starts')) {
      if (!this.acceptWord('with')) this.fail('expected "with" after "starts"');
      return { op: 'startsWith', key, value: this.expectString() };
    }
    if (this.acceptWord('ends')) {
      if (!this.acceptWord('with')) this.fail('expected "with" after "ends"');
      return { op: 'endsWith', key, value: this.expectString() };
    }
    return this.fail(`expected an operator (==, !=, in, not in, contains, starts with, ends with) after label ${JSON.stringify(key)}`);
  }

  private parseSet(): string[] {
    this.expectPunct('{');
    const values: string[] = [];
    if (this.acceptPunct('}')) return values;
    do values.push(this.expectString());
    while (this.acceptPunct(','));
    this.expectPunct('}');
    return values;
  }

  private peek(): Token {
    return this.tokens[this.index]!;
  }
  private acceptPunct(text: string): boolean {
    const t = this.peek();
    if (t.kind === 'punct' && t.text === text) return (this.index++, true);
    return false;
  }
  private acceptWord(text: string): boolean {
    const t = this.peek();
    if (t.kind === 'label' && t.text === text) return (this.index++, true);
    return false;
  }
  private expectPunct(text: string): void {
    if (!this.acceptPunct(text)) this.fail(`expected ${JSON.stringify(text)}`);
  }
  private expectLabel(): string {
    const t = this.peek();
    if (t.kind !== 'label') return this.fail(t.kind === 'end' ? 'unexpected end of selector' : `expected a label, got ${JSON.stringify(t.text)}`);
    this.index++;
    return t.text;
  }
  private expectString(): string {
    const t = this.peek();
    if (t.kind !== 'string') return this.fail('expected a quoted string');
    this.index++;
    return t.text;
  }
  private fail(detail: string): never {
    throw new SelectorSyntaxError(this.source, this.peek().pos, detail);
  }
}

/** Parses a Calico selector; throws SelectorSyntaxError with the position of the problem. */
export function parseSelector(source: string): SelectorNode {
  return new Parser(source, tokenize(source)).parse();
}

export function selectorMatches(node: SelectorNode, labels: Labels): boolean {
  switch (node.op) {
    case 'all':
      return true;
    case 'has':
      return Object.hasOwn(labels, node.key);
    case 'eq':
      return labels[node.key] === node.value;
    case 'ne':
      return labels[node.key] !== node.value;
    case 'contains':
      return labels[node.key]?.includes(node.value) ?? false;
    case 'startsWith':
      return labels[node.key]?.startsWith(node.value) ?? false;
    case 'endsWith':
      return labels[node.key]?.endsWith(node.value) ?? false;
    case 'in':
      return Object.hasOwn(labels, node.key) && node.values.includes(labels[node.key]!);
    case 'notIn':
      return !Object.hasOwn(labels, node.key) || !node.values.includes(labels[node.key]!);
    case 'not':
      return !selectorMatches(node.operand, labels);
    case 'and':
      return node.operands.every((o) => selectorMatches(o, labels));
    case 'or':
      return node.operands.some((o) => selectorMatches(o, labels));
  }
}
