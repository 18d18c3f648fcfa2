'use strict';
// Which platform package of the native addon a machine needs, and the error that names it when it is missing.

const pkg = require('../package.json');

const ARCHES = { x86_64: 'x64', aarch64: 'arm64', i686: 'ia32', armv7: 'arm', riscv64gc: 'riscv64' };

/** The `<platform>-<arch>[-<abi>]` suffix napi gives a Rust target triple, e.g. `linux-x64-gnu`. */
function suffixOfTriple(triple) {
  const [cpu, , system, abi] = triple.split('-');
  const arch = ARCHES[cpu] ?? cpu;
  if (system === 'darwin') return `darwin-${arch}`;
  if (system === 'windows') return `win32-${arch}-${abi}`;
  return `${system}-${arch}${abi ? `-${abi}` : ''}`;
}

/** Which C library a Linux process runs on: a glibc build reports its version, a musl one does not. */
function linuxLibc() {
  try {
    return process.report.getReport().header.glibcVersionRuntime ? 'gnu' : 'musl';
  } catch {
    return 'gnu';
  }
}

/** The suffix of the platform package this process would need. */
function wantedSuffix({ platform, arch, libc }) {
  if (platform === 'linux') return `linux-${arch}-${libc}`;
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

/**
 * The error to throw when no native binding loads. `machine` is `{ platform, arch, libc }`; `installed`
 * says whether the wanted platform package resolves; `cause` is what the generated loader threw.
 */
function missingBindingError(machine, installed, cause) {
  const suffix = wantedSuffix(machine);
  const wanted = `${pkg.name}-${suffix}`;
  const detected = `platform ${machine.platform}, arch ${machine.arch}` +
    (machine.platform === 'linux' ? `, libc ${machine.libc === 'gnu' ? 'glibc' : machine.libc}` : '');
  const supported = pkg.napi.targets.map(suffixOfTriple);
  let message;
  if (!supported.includes(suffix)) {
    message = `Helios has no prebuilt binary for this machine (${detected}): there is no package ${wanted}. ` +
      `Prebuilt binaries exist for ${supported.join(', ')}; on other machines build the addon from a clone ` +
      'of the repository with `npm run build`.';
  } else if (installed) {
    const reasons = Array.isArray(cause?.cause) ? cause.cause.map((e) => e.message).join('; ') : cause?.message;
    message = `Helios: ${wanted} is installed but its binary failed to load (${detected}): ${reasons}`;
  } else {
    message = `Helios: ${wanted} is not installed, so there is no native binary for this machine (${detected}). ` +
      `It is an optional dependency of ${pkg.name}: install it with \`npm install ${wanted}@${pkg.version}\`, ` +
      'or reinstall without --omit=optional / --no-optional (with npm, remove node_modules and ' +
      'package-lock.json first: npm can skip optional dependencies of a lockfile made on another platform).';
  }
  const error = new Error(message, { cause });
  error.code = 'HELIOS_NATIVE_BINDING_MISSING';
  return error;
}

module.exports = { linuxLibc, wantedSuffix, missingBindingError, suffixOfTriple };
