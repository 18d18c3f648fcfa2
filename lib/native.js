'use strict';
// Loads the native addon through the loader `napi build` generates (native.js). When no binary fits this
// machine, that loader throws a generic error; this one names the platform package to install instead.

const pkg = require('../package.json');
const { linuxLibc, wantedSuffix, missingBindingError } = require('./platform.js');

function load() {
  try {
    return require('../native.js');
  } catch (error) {
    if (error?.code === 'MODULE_NOT_FOUND' && String(error.message).startsWith("Cannot find module '../native.js'")) {
      throw new Error('Helios: the native loader native.js is missing; build the addon with `npm run build`', {
        cause: error,
      });
    }
    const machine = { platform: process.platform, arch: process.arch, libc: linuxLibc() };
    let installed = false;
    try {
      require.resolve(`${pkg.name}-${wantedSuffix(machine)}`);
      installed = true;
    } catch {
      // not installed: the common case the message explains
    }
    throw missingBindingError(machine, installed, error);
  }
}

module.exports = load();
