#!/usr/bin/env node
// The sources are TypeScript that Node >= 22.18 runs directly (type stripping).
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(`opencloud-node needs Node.js 22.18 or newer, this is ${process.version}.\n` +
    'In a checkout, run it through npm (npx opencloud-node, npm test), which uses the Node that "npm install" put in node_modules.\n')
  process.exit(1)
}
const { main } = await import('../src/cli/main.ts')
process.exitCode = await main(process.argv.slice(2))
