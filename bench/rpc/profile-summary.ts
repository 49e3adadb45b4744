/**
 * The top self-time functions of a V8 .cpuprofile (what `node --cpu-prof`
 * writes), so a profile of bench/rpc can be read in a terminal:
 *
 *   node --cpu-prof --cpu-prof-dir /tmp/prof bench/rpc/index.ts --only bulk
 *   node bench/rpc/profile-summary.ts /tmp/prof/*.cpuprofile [--top 30]
 *
 * `npm run bench:rpc -- --profile DIR` profiles the client and the server
 * process both. Self time is the time a function ran itself, not its callees;
 * the total of (program), (garbage collector) and (idle) says how much of the
 * process was not JavaScript.
 */
import { readFile } from 'node:fs/promises'
import { basename } from 'node:path'
import { parseArgs } from 'node:util'

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
  children?: number[]
}

interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    top: { type: 'string', default: '25' },
    /** also print the call stacks (a few frames up) that spend self time in functions matching this */
    callers: { type: 'string' },
    depth: { type: 'string', default: '6' },
    /** also list the functions by inclusive time (their own and their callees') */
    inclusive: { type: 'boolean', default: false }
  }
})
const TOP = Number(values.top)
const DEPTH = Number(values.depth)

function where (node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame
  const name = functionName === '' ? '(anonymous)' : functionName
  if (url === '') {
    return name
  }
  return `${name}  ${shortUrl(url)}:${lineNumber + 1}`
}

/** the package and its file, or the project file, not the whole path */
function shortUrl (url: string): string {
  const path = url.replace(/^file:\/\//, '')
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(path)
  if (pkg != null) {
    return `${pkg[1]}/${pkg[2].replace(/^(dist\/)?(src\/)?/, '')}`
  }
  return path.replace(/^.*\/(src|bench|test)\//, '$1/')
}

function packageOf (node: ProfileNode): string {
  const { functionName, url } = node.callFrame
  if (url === '') {
    return functionName.startsWith('(') ? functionName : '(native)'
  }
  if (url.startsWith('node:')) {
    return 'node:internal'
  }
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)
  if (pkg != null) {
    return pkg[1]
  }
  return shortUrl(url).split('/').slice(0, 2).join('/')
}

for (const file of positionals) {
  const profile: Profile = JSON.parse(await readFile(file, 'utf8'))
  const byId = new Map(profile.nodes.map(n => [n.id, n]))
  const parent = new Map<number, ProfileNode>()
  for (const n of profile.nodes) {
    for (const c of n.children ?? []) parent.set(c, n)
  }
  const self = new Map<string, number>()
  const packages = new Map<string, number>()
  const stacks = new Map<string, number>()
  const inclusive = new Map<string, number>()
  const matcher = values.callers == null ? undefined : new RegExp(values.callers)
  // a sample's time is the delta that follows it
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i])
    if (node == null) continue
    const us = profile.timeDeltas[i + 1] ?? 0
    const key = where(node)
    self.set(key, (self.get(key) ?? 0) + us)
    const pkg = packageOf(node)
    packages.set(pkg, (packages.get(pkg) ?? 0) + us)
    if (values.inclusive) {
      const seen = new Set<string>()
      for (let n: ProfileNode | undefined = node; n != null; n = parent.get(n.id)) {
        const k = where(n)
        if (!seen.has(k)) {
          seen.add(k)
          inclusive.set(k, (inclusive.get(k) ?? 0) + us)
        }
      }
    }
    if (matcher?.test(key) === true) {
      const frames: string[] = []
      for (let n: ProfileNode | undefined = node; n != null && frames.length < DEPTH; n = parent.get(n.id)) {
        frames.push(where(n))
      }
      const stack = frames.join('\n           <- ')
      stacks.set(stack, (stacks.get(stack) ?? 0) + us)
    }
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0)
  process.stdout.write(`\n${basename(file)}: ${(total / 1e6).toFixed(2)} s sampled\n\n  self ms    %   function\n`)
  for (const [key, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
    process.stdout.write(`${(us / 1000).toFixed(0).padStart(8)} ${(us / total * 100).toFixed(1).padStart(5)}  ${key}\n`)
  }
  process.stdout.write('\n  by package or file tree:\n')
  for (const [pkg, us] of [...packages].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
    process.stdout.write(`${(us / 1000).toFixed(0).padStart(8)} ${(us / total * 100).toFixed(1).padStart(5)}  ${pkg}\n`)
  }
  if (values.inclusive) {
    process.stdout.write('\n  inclusive ms  %   function\n')
    for (const [key, us] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, TOP * 2)) {
      process.stdout.write(`${(us / 1000).toFixed(0).padStart(8)} ${(us / total * 100).toFixed(1).padStart(5)}  ${key}\n`)
    }
  }
  if (matcher != null) {
    process.stdout.write(`\n  stacks of ${values.callers}:\n`)
    for (const [stack, us] of [...stacks].sort((a, b) => b[1] - a[1]).slice(0, 12)) {
      process.stdout.write(`${(us / 1000).toFixed(0).padStart(8)}  ${stack}\n`)
    }
  }
}
