import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { layerProblems } from '../../scripts/layers.ts'
import { tempDir } from '../helpers/nodes.ts'

/**
 * The floors of the house (DESIGN.md): ground (src/protocols, src/utils),
 * engines, modules (src/services), the node, the CLI. A file imports its
 * floor or lower; nothing reaches itself through its imports.
 */
describe('the floors of src/', () => {
  it('hold: no import climbs a floor, no file is in an import cycle, no two engines use each other', () => {
    const src = fileURLToPath(new URL('../../src', import.meta.url))
    assert.deepEqual(layerProblems(src).map(p => `${p.kind}: ${p.text}`), [])
  })

  it('are checked: a climbing import, a cycle of types and two engines in a circle are each found', async () => {
    const dir = await tempDir('oc-layers-')
    try {
      const files: Record<string, string> = {
        'protocols/codec.ts': "import type { X } from '../storage/client.ts'\n",
        'storage/client.ts': "export type X = 1\nimport { y } from '../payments/agent.ts'\n",
        'payments/agent.ts': "export const y = 1\nimport type { Z } from '../storage/types.ts'\n",
        'storage/types.ts': 'export type Z = 2\n',
        'services/a.ts': "import { b } from './b.ts'\nexport const a = 1\n",
        'services/b.ts': "export { a as b } from './a.ts'\n",
        'cli/main.ts': "import { a } from '../services/a.ts'\n"
      }
      for (const [path, text] of Object.entries(files)) {
        await mkdir(dirname(join(dir.path, path)), { recursive: true })
        await writeFile(join(dir.path, path), text)
      }
      const found = layerProblems(dir.path).map(p => `${p.kind}: ${p.text}`).sort()
      assert.deepEqual(found, [
        'climbs: protocols/codec.ts (ground) imports storage/client.ts (engine)',
        'cycle: services/a.ts <-> services/b.ts',
        'engine-cycle: payments <-> storage'
      ])
    } finally {
      await dir.cleanup()
    }
  })
})
