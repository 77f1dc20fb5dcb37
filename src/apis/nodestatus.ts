// The netwarden-agent-node-status admission policy: Netwarden's NodeRestriction for the one
// kind agents still write status of, PacketCapture (its per-node capture files). Every agent runs
// as the one netwarden-agent ServiceAccount, whose RBAC lets it patch the status of every
// PacketCapture; this policy narrows that to the agent's own node, read from the pod-bound token
// the agent writes with (userInfo.extra[NODE_NAME_EXTRA]). DropTail and AuditForwarder agents
// write no status at all: they report to the controller (src/apis/nodereport.ts), and RBAC gives
// them no status verb there.
//
// On an UPDATE of the status subresource by the agent ServiceAccount, between oldObject and object:
//   - per-node lists (list-maps keyed by node: PacketCapture status.files): every entry of another
//     node stays as it was; its own entry it may add, change and remove;
//   - PacketCapture status.targets (keyed by pod; the controller sets pod, node and ip, and the
//     agents act on them): the agent sets only AGENT_TARGET_FIELDS of its own node's targets, and
//     may drop leftovers that carry no controller field;
//   - every other status field is the controller's and stays as it was.
// The fields come from the status schema, so a new status field is the controller's until it
// is listed here. Lists are compared with their order: server-side apply keeps the order of the
// entries an apply does not touch, so only a hand-made patch that reorders them is refused.
import { AGENT_SERVICE_ACCOUNT, NODE_NAME_EXTRA, serviceAccountUser } from './identity.js';
import { SYSTEM_NAMESPACE } from './limits.js';
import { PacketCaptureType } from './meta.js';
import { packetCaptureStatusSchema } from './packetcapture.js';

/** Fields of a PacketCapture status.targets entry that the agent of its node writes. */
export const AGENT_TARGET_FIELDS: readonly string[] = ['interface'];

interface ListSchema {
  type?: string;
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: readonly string[];
  items?: { properties?: Record<string, unknown> };
}

const STATUS_SCHEMAS: ReadonlyArray<{ properties: Record<string, unknown> }> = [packetCaptureStatusSchema];

/** How the status fields of PacketCapture divide between the agents and the controller. */
export interface StatusOwnership {
  /** List-maps keyed by node: one entry per agent. */
  perNode: string[];
  /** List-maps keyed otherwise whose entries name a node: the controller's, but for AGENT_TARGET_FIELDS. */
  nodeAssigned: Array<{ field: string; key: string; controllerFields: string[]; agentFields: string[] }>;
  /** Everything else. */
  controller: string[];
}

export function statusOwnership(): StatusOwnership {
  const out: StatusOwnership = { perNode: [], nodeAssigned: [], controller: [] };
  for (const schema of STATUS_SCHEMAS) {
    for (const [field, raw] of Object.entries(schema.properties)) {
      const prop = raw as ListSchema;
      const keys = prop['x-kubernetes-list-type'] === 'map' ? (prop['x-kubernetes-list-map-keys'] ?? []) : [];
      const itemFields = Object.keys(prop.items?.properties ?? {});
      const seen = [...out.perNode, ...out.nodeAssigned.map((n) => n.field), ...out.controller].includes(field);
      if (seen) continue;
      if (keys.length === 1 && keys[0] === 'node') out.perNode.push(field);
      else if (keys.length === 1 && itemFields.includes('node')) {
        const agentFields = itemFields.filter((f) => AGENT_TARGET_FIELDS.includes(f));
        out.nodeAssigned.push({ field, key: keys[0]!, controllerFields: itemFields.filter((f) => !agentFields.includes(f)), agentFields });
      } else out.controller.push(field);
    }
  }
  return out;
}

const NODE = 'variables.nodeName';

/** The list's entries in oldObject and object, [] when absent. */
function listVariables(field: string): Array<{ name: string; expression: string }> {
  return [
    { name: `${field}Old`, expression: `oldObject.?status.?${field}.orValue([])` },
    { name: `${field}New`, expression: `object.?status.?${field}.orValue([])` },
  ];
}

function perNodeRules(field: string): { variables: Array<{ name: string; expression: string }>; validation: { expression: string; message: string; messageExpression: string } } {
  const oldL = `variables.${field}Old`;
  const newL = `variables.${field}New`;
  const others = (list: string) => `${list}.filter(e, e.node != ${NODE})`;
  // Only on a refusal: which other nodes' entries were added, changed or removed (quadratic, so
  // left to the message; the rule itself is linear).
  const refused =
    `${newL}.filter(e, e.node != ${NODE} && !${oldL}.exists(o, o == e)).map(e, e.node) + ` +
    `${oldL}.filter(o, o.node != ${NODE} && !${newL}.exists(e, e.node == o.node)).map(o, o.node)`;
  return {
    variables: [...listVariables(field), { name: `${field}Refused`, expression: refused }],
    validation: {
      expression: `${others(newL)} == ${others(oldL)}`,
      message: `status.${field}: an agent may add, change and remove only the entry of its own node`,
      messageExpression:
        `'status.${field}: the agent on node ' + ${NODE} + ' may write only its own entry (node ' + ${NODE} + '); refused ' + ` +
        `(size(variables.${field}Refused) > 0 ? 'the entry of node ' + variables.${field}Refused.join(', ') : 'a reordering of the other nodes\\' entries')`,
    },
  };
}

function nodeAssignedRules(list: StatusOwnership['nodeAssigned'][number]): { variables: Array<{ name: string; expression: string }>; validations: Array<{ expression: string; message: string; messageExpression: string }> } {
  const { field, key } = list;
  const oldL = `variables.${field}Old`;
  const newL = `variables.${field}New`;
  const assigned = list.controllerFields.filter((f) => f !== key);
  const hasController = (v: string) => `(${assigned.map((f) => `has(${v}.${f})`).join(' || ')})`;
  const own = (v: string) => `(has(${v}.node) && ${v}.node == ${NODE})`;
  const foreign = (v: string) => `(${hasController(v)} && !${own(v)})`;
  const view = (v: string) => `[${list.controllerFields.map((f) => `${v}.?${f}`).join(', ')}]`;
  const label = (v: string) => `${v}.${key} + ' on node ' + ${v}.?node.orValue('(none)')`;
  const entry = `status.${field}[${key}=`;
  const controllerList = list.controllerFields.join(', ');
  return {
    variables: [
      ...listVariables(field),
      { name: `${field}Own`, expression: `[${newL}.filter(t, ${own('t')}).map(t, ${view('t')}), ${oldL}.filter(t, ${own('t')}).map(t, ${view('t')})]` },
      { name: `${field}ForeignNew`, expression: `${newL}.filter(t, ${foreign('t')})` },
      { name: `${field}ForeignOld`, expression: `${oldL}.filter(t, ${foreign('t')})` },
    ],
    validations: [
      {
        // Its own node's targets: the controller's fields as they were, no target added or removed.
        expression: `variables.${field}Own[0] == variables.${field}Own[1]`,
        message: `status.${field}: only the controller writes ${controllerList} of a ${key}'s entry and adds or removes entries; an agent sets only ${list.agentFields.join(', ')} of its own node's entries`,
        messageExpression:
          `'status.${field}: only the controller writes ${controllerList} of an entry and adds or removes entries; the agent on node ' + ${NODE} + ' may set only ${list.agentFields.join(', ')}; refused the change to ' + ` +
          `(${newL}.filter(t, ${own('t')} && !${oldL}.exists(o, ${view('o')} == ${view('t')})) + ${oldL}.filter(o, ${own('o')} && !${newL}.exists(t, ${own('t')} && t.${key} == o.${key}))).map(t, '${entry}' + ${label('t')} + ']').join(', ')`,
      },
      {
        // Other nodes' targets: exactly as they were.
        expression: `variables.${field}ForeignNew == variables.${field}ForeignOld`,
        message: `status.${field}: an agent may not change the entries of other nodes`,
        messageExpression:
          `'status.${field}: the agent on node ' + ${NODE} + ' may not change the entries of other nodes; refused ' + ` +
          `(variables.${field}ForeignNew.filter(t, !variables.${field}ForeignOld.exists(o, o == t)) + variables.${field}ForeignOld.filter(o, !variables.${field}ForeignNew.exists(t, t.${key} == o.${key}))).map(t, '${entry}' + ${label('t')} + ']').join(', ')`,
      },
      {
        // An entry with no controller field is an agent's leftover: it may go, but not appear.
        expression: `${newL}.all(t, ${hasController('t')} || ${oldL}.exists(o, o.${key} == t.${key} && !${hasController('o')}))`,
        message: `status.${field}: only the controller adds entries`,
        messageExpression: `'status.${field}: only the controller adds entries; refused ' + ${newL}.filter(t, !${hasController('t')} && !${oldL}.exists(o, o.${key} == t.${key})).map(t, '${entry}' + t.${key} + ']').join(', ')`,
      },
    ],
  };
}

function controllerRule(fields: readonly string[]): { variables: Array<{ name: string; expression: string }>; validation: { expression: string; message: string; messageExpression: string } } {
  const changed = fields.map((f) => `(object.?status.?${f} == oldObject.?status.?${f} ? [] : ['status.${f}'])`).join(' + ');
  return {
    variables: [{ name: 'controllerFieldsChanged', expression: changed }],
    validation: {
      expression: 'size(variables.controllerFieldsChanged) == 0',
      message: 'only the controller writes these status fields; an agent writes only its own node\'s entries',
      messageExpression: "variables.controllerFieldsChanged.join(', ') + ': only the controller writes these; the agent on node ' + variables.nodeName + ' writes only its own node\\'s entries'",
    },
  };
}

function buildPolicy() {
  const ownership = statusOwnership();
  const perNode = ownership.perNode.map(perNodeRules);
  const assigned = ownership.nodeAssigned.map(nodeAssignedRules);
  const controller = controllerRule(ownership.controller);
  const extra = `request.userInfo.extra`;
  return {
    name: 'netwarden-agent-node-status',
    resources: [`${PacketCaptureType.plural}/status`],
    operations: ['UPDATE'],
    matchConditions: [{ name: 'netwarden-agent', expression: `request.userInfo.username == '${serviceAccountUser(SYSTEM_NAMESPACE, AGENT_SERVICE_ACCOUNT)}'` }],
    variables: [
      { name: 'nodeName', expression: `'${NODE_NAME_EXTRA}' in ${extra} && size(${extra}['${NODE_NAME_EXTRA}']) == 1 ? ${extra}['${NODE_NAME_EXTRA}'][0] : ''` },
      ...perNode.flatMap((r) => r.variables),
      ...assigned.flatMap((r) => r.variables),
      ...controller.variables,
    ],
    validations: [
      {
        expression: "variables.nodeName != ''",
        message: `the agent's token is bound to no node (no ${NODE_NAME_EXTRA} in its user info): an agent writes status only with the token of its DaemonSet pod, which names the pod's node`,
      },
      ...perNode.map((r) => r.validation),
      ...assigned.flatMap((r) => r.validations),
      controller.validation,
    ],
  };
}

export const AGENT_NODE_STATUS_POLICY = buildPolicy();
