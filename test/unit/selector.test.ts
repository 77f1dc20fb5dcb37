import { expect } from 'chai';
import { parseSelector, selectorMatches, SelectorSyntaxError } from '../../src/apis/selector.js';

const logging = { app: 'logging', tier: 'backend', 'k8s-app': 'kube-dns' };
const matches = (selector: string, labels: Record<string, string> = logging) => selectorMatches(parseSelector(selector), labels);

describe('Calico selector', () => {
  it('matches equality, inequality and all()', () => {
    expect(matches('app == "logging"')).to.equal(true);
    expect(matches("app == 'web'")).to.equal(false);
    expect(matches('app != "web"')).to.equal(true);
    expect(matches('all()')).to.equal(true);
    expect(matches('')).to.equal(true);
  });

  it('treats != and not in as true when the label is missing, as Calico does', () => {
    expect(matches('color != "red"')).to.equal(true);
    expect(matches('color not in {"red"}')).to.equal(true);
    expect(matches('color in {"red"}')).to.equal(false);
  });

  it('handles sets, has(), negation, precedence and parentheses', () => {
    expect(matches('tier in {"frontend", "backend"}')).to.equal(true);
    expect(matches('has(tier) && !has(color)')).to.equal(true);
    expect(matches('app == "web" || tier == "backend" && has(app)')).to.equal(true);
    expect(matches('(app == "web" || tier == "backend") && !has(app)')).to.equal(false);
    expect(matches('!(app == "logging")')).to.equal(false);
  });

  it('supports contains, starts with and ends with', () => {
    expect(matches('k8s-app contains "dns"')).to.equal(true);
    expect(matches('app starts with "log"')).to.equal(true);
    expect(matches('app ends with "ing"')).to.equal(true);
    expect(matches('app ends with "xyz"')).to.equal(false);
  });

  it('reports where a malformed selector goes wrong', () => {
    for (const bad of ['app ==', 'app = "x"', 'has(app', 'app in {"a",}', '"x" == app', 'app == "x" &&']) {
      expect(() => parseSelector(bad), bad).to.throw(SelectorSyntaxError, /invalid selector .* at position \d+/);
    }
  });
});
