import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The floors of the house (DESIGN.md, "Floors"), checked over the import
 * graph of src/: a file imports its own floor or lower, never higher, and
 * no file reaches itself through its imports (type-only imports count: a
 * cycle of types is a cycle of design). Engines may use each other where
 * the domain says so, never in a circle.
 *
 *   node scripts/layers.ts          prints the graph's problems, exit 1 if any
 */

export const FLOORS = ['ground', 'engine', 'module', 'node', 'cli'] as const
export type Floor = typeof FLOORS[number]

/** The floor of a path relative to src/ */
export function floorOf (path: string): Floor {
  const top = path.split('/')[0]
  switch (top) {
    case 'protocols':
    case 'utils':
      return 'ground'
    case 'services':
      return 'module'
    case 'node':
      return 'node'
    case 'cli':
      return 'cli'
    default:
      return 'engine'
  }
}

export interface Problem {
  kind: 'climbs' | 'cycle' | 'engine-cycle'
  text: string
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'";]*?from\s+'(\.{1,2}\/[^']+)'|import\s*\(\s*'(\.{1,2}\/[^']+)'\s*\)/g

/** Every relative import of every .ts file under `src`, as [from, to] paths relative to `src` */
export function importGraph (src: string): Map<string, string[]> {
  const graph = new Map<string, string[]>()
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name)
      if (statSync(path).isDirectory()) {
        walk(path)
      } else if (path.endsWith('.ts')) {
        const text = readFileSync(path, 'utf8')
        const to = [...text.matchAll(IMPORT)].map(m => relative(src, resolve(dirname(path), m[1] ?? m[2])))
        graph.set(relative(src, path), to)
      }
    }
  }
  walk(src)
  return graph
}

/** Strongly connected components of more than one node (or a node importing itself) */
function cycles (graph: Map<string, string[]>): string[][] {
  let index = 0
  const indices = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const found: string[][] = []
  const visit = (v: string): void => {
    indices.set(v, index)
    low.set(v, index)
    index++
    stack.push(v)
    onStack.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) {
        continue
      }
      if (!indices.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number))
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) as number, indices.get(w) as number))
      }
    }
    if (low.get(v) === indices.get(v)) {
      const component: string[] = []
      let w: string
      do {
        w = stack.pop() as string
        onStack.delete(w)
        component.push(w)
      } while (w !== v)
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) {
        found.push(component.sort())
      }
    }
  }
  for (const v of [...graph.keys()].sort()) {
    if (!indices.has(v)) {
      visit(v)
    }
  }
  return found
}

/** What breaks the floors in the import graph of `src` */
export function layerProblems (src: string): Problem[] {
  const graph = importGraph(src)
  const problems: Problem[] = []
  for (const [from, targets] of graph) {
    for (const to of targets) {
      if (FLOORS.indexOf(floorOf(to)) > FLOORS.indexOf(floorOf(from))) {
        problems.push({ kind: 'climbs', text: `${from} (${floorOf(from)}) imports ${to} (${floorOf(to)})` })
      }
    }
  }
  for (const component of cycles(graph)) {
    problems.push({ kind: 'cycle', text: component.join(' <-> ') })
  }
  // engines as folders: storage may use payments, never payments storage too
  const engines = new Map<string, string[]>()
  for (const [from, targets] of graph) {
    if (floorOf(from) !== 'engine') {
      continue
    }
    const a = from.split('/')[0]
    for (const to of targets) {
      const b = to.split('/')[0]
      if (floorOf(to) === 'engine' && a !== b) {
        engines.set(a, [...new Set([...(engines.get(a) ?? []), b])])
      }
    }
    engines.set(a, engines.get(a) ?? [])
  }
  for (const component of cycles(engines)) {
    problems.push({ kind: 'engine-cycle', text: component.join(' <-> ') })
  }
  return problems
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const problems = layerProblems(fileURLToPath(new URL('../src', import.meta.url)))
  for (const p of problems) {
    console.log(`${p.kind}: ${p.text}`)
  }
  console.log(problems.length === 0 ? 'the floors hold: no import climbs and there is no cycle' : `${problems.length} problems`)
  process.exitCode = problems.length === 0 ? 0 : 1
}
