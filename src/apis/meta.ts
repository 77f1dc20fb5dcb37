// Shared API plumbing for the three kinds: group/version, how to address each resource, and the
// Kubernetes-convention Condition every status carries.

export const GROUP = 'netwarden.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** How to reach one custom resource type through the API server. */
export interface ResourceType {
  group: string;
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
}

export const DropTailType: ResourceType = { group: GROUP, version: VERSION, kind: 'DropTail', plural: 'droptails', namespaced: false };
export const PacketCaptureType: ResourceType = { group: GROUP, version: VERSION, kind: 'PacketCapture', plural: 'packetcaptures', namespaced: true };
export const AuditForwarderType: ResourceType = { group: GROUP, version: VERSION, kind: 'AuditForwarder', plural: 'auditforwarders', namespaced: false };

/** metav1.Condition. */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

/** The API path of a collection, or of one object when name is given. */
export function resourcePath(type: ResourceType, namespace?: string, name?: string): string {
  const base = type.group === '' ? `/api/${type.version}` : `/apis/${type.group}/${type.version}`;
  const ns = type.namespaced && namespace ? `/namespaces/${namespace}` : '';
  return `${base}${ns}/${type.plural}${name ? `/${name}` : ''}`;
}
