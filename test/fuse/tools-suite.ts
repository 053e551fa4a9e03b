// The tools a person uses on a mount: git, tar, cp, vim, sqlite3 (rollback journal and WAL).
// Written once and run on a local store (tools.test.ts) and on a 3-node cluster
// (test/cluster/posix.test.ts).
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { REPO, tempDir } from '../helpers/mount'

const sh = (cmd: string, cwd: string) => execFileSync('sh', ['-c', cmd], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })

/** Defines the tools tests; `mnt()` is the mountpoint once the tests run. */
export function toolsSuite(mnt: () => string): void {
  test('tools: git init, commit, clone of a local repository and fsck on the mount', (t) => {
    const src = tempDir(t)
    sh('git init -q . && for i in 1 2 3; do echo "line $i" > f$i; git add f$i; git -c user.email=t@t -c user.name=t commit -qm "c$i"; done', src)
    sh(`git clone -q ${src} clone`, mnt())
    const repo = path.join(mnt(), 'clone')
    assert.equal(sh('git log --oneline | wc -l', repo).trim(), '3')
    sh('git fsck --strict', repo)
    sh('echo more >> f1 && git -c user.email=t@t -c user.name=t commit -qam c4 && git gc -q', repo)
    assert.equal(sh('git log --oneline | wc -l', repo).trim(), '4')
  })

  test('tools: tar and cp -a round trips of the source tree', () => {
    sh(`tar -C ${REPO} -cf ${mnt()}/src.tar src docs`, mnt())
    fs.mkdirSync(path.join(mnt(), 'untar'))
    sh('tar -C untar -xf src.tar', mnt())
    sh(`diff -r ${REPO}/src untar/src && diff -r ${REPO}/docs untar/docs`, mnt())
    sh(`cp -a ${REPO}/src copied && diff -r ${REPO}/src copied`, mnt())
  })

  test('tools: vim edits and saves a file', () => {
    const f = path.join(mnt(), 'edit.txt')
    fs.writeFileSync(f, 'alpha\nbeta\n')
    execFileSync('vim', ['-Es', '-u', 'NONE', '-c', '%s/beta/gamma/', '-c', 'wq', f], { stdio: 'ignore' })
    assert.equal(fs.readFileSync(f, 'utf8'), 'alpha\ngamma\n')
  })

  for (const mode of ['delete', 'wal']) {
    test(`tools: sqlite3 with journal_mode=${mode}, synchronous=full`, () => {
      const db = path.join(mnt(), `t-${mode}.db`)
      const sql = `pragma journal_mode=${mode}; pragma synchronous=full; create table t(id integer primary key, v text);
        with recursive c(x) as (select 1 union all select x + 1 from c where x < 2000) insert into t(v) select hex(randomblob(100)) from c;
        begin; update t set v = 'x' where id % 3 = 0; commit; select count(*) from t; pragma integrity_check;`
      const out = execFileSync('sqlite3', [db], { input: sql, encoding: 'utf8' })
      assert.match(out, /2000\nok\n$/)
    })
  }
}
