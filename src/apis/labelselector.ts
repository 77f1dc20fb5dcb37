// metav1.LabelSelector evaluation (matchLabels AND matchExpressions), for PacketCapture.spec.podSelector.
import type { V1LabelSelector } from '@kubernetes/client-node';
import type { Labels } from './selector.js';

export function labelSelectorMatches(selector: V1LabelSelector, labels: Labels): boolean {
  const byLabels = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  return byLabels && (selector.matchExpressions ?? []).every((e) => expressionMatches(e.key, e.operator, e.values ?? [], labels));
}

function expressionMatches(key: string, operator: string, values: string[], labels: Labels): boolean {
  const has = Object.hasOwn(labels, key);
  switch (operator) {
    case 'In':
      return has && values.includes(labels[key]!);
    case 'NotIn':
      return !has || !values.includes(labels[key]!);
    case 'Exists':
      return has;
    case 'DoesNotExist':
      return !has;
    default:
      return false; // unknown operators select nothing rather than everything
  }
}
