// Mocha's spec reporter plus a machine-readable tally: hack/run.sh adds up the tallies of the unit
// and e2e runs into one closing "N passed, N failed" line.
const fs = require('node:fs');
const { Spec } = require('mocha/lib/reporters/spec.js');

class SummaryReporter extends Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once('end', () => {
      const file = process.env.NETWARDEN_TEST_TALLY;
      const { passes, failures, pending } = this.stats;
      if (file) fs.appendFileSync(file, `${passes} ${failures} ${pending}\n`);
    });
  }
}

module.exports = SummaryReporter;
