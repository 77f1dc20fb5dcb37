// How the controller combines a capture's schedule with its agents' per-node reports.
import { expect } from 'chai';
import type { PacketCapture } from '../../src/apis/packetcapture.js';
import { captureEnded, capturePhase, nodesWithFiles } from '../../src/reconcilers/packetcapture/phase.js';
import { sumDurationTerms } from '../../src/util/duration.js';

const NOW = new Date('2026-01-10T12:00:00Z');

function capture(spec: Partial<PacketCapture['spec']>, files: Array<{ node: string; state?: string; message?: string }> = [], phase?: string): PacketCapture {
  return {
    apiVersion: 'netwarden.io/v1alpha1',
    kind: 'PacketCapture',
    metadata: { name: 'c', namespace: 'storefront', creationTimestamp: '2026-01-10T11:50:00Z' as unknown as Date },
    spec: { selector: 'all()', ...spec },
    status: { files, ...(phase ? { phase } : {}) },
  } as unknown as PacketCapture;
}

describe('packetcapture phase', function () {
  it('parses Go durations', function () {
    expect(sumDurationTerms('15m')).to.equal(900_000);
    expect(sumDurationTerms('1h30m')).to.equal(5_400_000);
    expect(sumDurationTerms('1.5s')).to.equal(1500);
    expect(sumDurationTerms('250ms')).to.equal(250);
  });

  it('is Scheduled before startTime and comes back at the start', function () {
    const v = capturePhase(capture({ startTime: '2026-01-10T12:05:00Z' }), 1, NOW);
    expect(v.phase).to.equal('Scheduled');
    expect(v.nextBoundary?.toISOString()).to.equal('2026-01-10T12:05:00.000Z');
  });

  it('waits for traffic, then captures, from the agents\' states', function () {
    expect(capturePhase(capture({}, [{ node: 'a', state: 'WaitingForTraffic' }]), 1, NOW).phase).to.equal('WaitingForTraffic');
    expect(capturePhase(capture({}, [{ node: 'a', state: 'WaitingForTraffic' }, { node: 'b', state: 'Capturing' }]), 2, NOW).phase).to.equal('Capturing');
  });

  it('is Finished once endTime, or creation plus duration, has passed', function () {
    expect(capturePhase(capture({ endTime: '2026-01-10T11:59:00Z' }, [{ node: 'a', state: 'Capturing' }]), 1, NOW).phase).to.equal('Finished');
    expect(capturePhase(capture({ duration: '5m' }, [{ node: 'a', state: 'Capturing' }]), 1, NOW).phase).to.equal('Finished');
    const running = capturePhase(capture({ duration: '15m' }, [{ node: 'a', state: 'Capturing' }]), 1, NOW);
    expect(running.phase).to.equal('Capturing');
    expect(running.nextBoundary?.toISOString()).to.equal('2026-01-10T12:05:00.000Z');
  });

  it('is Stopped when every node stopped before the end time, with the agents\' reasons', function () {
    const v = capturePhase(capture({ duration: '1h' }, [{ node: 'a', state: 'Finished', message: 'maxBytesPerPod reached' }, { node: 'b', state: 'Finished' }]), 2, NOW);
    expect(v.phase).to.equal('Stopped');
    expect(v.message).to.equal('stopped before the end time: maxBytesPerPod reached');
  });

  it('is Failed only when every node errored', function () {
    const all = capturePhase(capture({}, [{ node: 'a', state: 'Error', message: 'disk below 10%' }, { node: 'b', state: 'Error' }]), 2, NOW);
    expect(all.phase).to.equal('Failed');
    expect(all.message).to.equal('every node failed: a: disk below 10%; b: error');
    expect(capturePhase(capture({}, [{ node: 'a', state: 'Error' }, { node: 'b', state: 'Capturing' }]), 2, NOW).phase).to.equal('Capturing');
  });

  it('lets files be deleted only after the capture ended, saying when it will', function () {
    expect(captureEnded(capture({ duration: '15m' }, [], 'Capturing'), NOW)).to.deep.equal({ ended: false, reason: 'it ends at 2026-01-10T12:05:00.000Z' });
    expect(captureEnded(capture({}, [], 'Capturing'), NOW).reason).to.match(/no end time/);
    expect(captureEnded(capture({}, [], 'Stopped'), NOW).ended).to.equal(true);
    expect(captureEnded(capture({ endTime: '2026-01-10T11:00:00Z' }, [], 'Capturing'), NOW).ended).to.equal(true);
  });

  it('asks the nodes that report files', function () {
    expect(nodesWithFiles(capture({}, [{ node: 'b' }, { node: 'a' }, { node: 'b' }]))).to.deep.equal(['a', 'b']);
  });
});
