// The POSIX suite, written once and run through a real FUSE mount of each kind of store:
// test/fuse/posix.test.ts (a local store) and test/cluster/posix.test.ts (a 3-node cluster).
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { py, runAs, waitFor } from '../helpers/mount'

export interface PosixSuiteOptions {
  /** Size of the large-file test in MiB (1024 on a local store). */
  readonly bigMiB: number
  /** Files in the many-files-in-one-directory test (10,000 on a local store). */
  readonly manyFiles: number
}

/** Defines the suite's tests; `mnt()` is the mountpoint, valid once the tests run. */
export function posixSuite(mnt: () => string, o: PosixSuiteOptions): void {
  const m = { get mnt() { return mnt() } }
  let n = 0
  /** A fresh path in the mount for each test. */
  const p = (name = 'x'): string => path.join(m.mnt, `${name}-${++n}`)
  const errno = (code: string) => ({ code })

  describe('posix: files', () => {
    test('posix: create, write, read back, stat size and type', () => {
      const f = p()
      fs.writeFileSync(f, 'hello world')
      assert.equal(fs.readFileSync(f, 'utf8'), 'hello world')
      const st = fs.statSync(f)
      assert.equal(st.size, 11)
      assert.ok(st.isFile())
      assert.equal(st.mode & 0o777, 0o644)
    })

    test('posix: ENOENT, EEXIST, ENOTDIR, EISDIR', () => {
      const d = p('d')
      fs.mkdirSync(d)
      const f = path.join(d, 'f')
      fs.writeFileSync(f, 'x')
      assert.throws(() => fs.statSync(path.join(d, 'missing')), errno('ENOENT'))
      assert.throws(() => fs.readFileSync(path.join(d, 'missing')), errno('ENOENT'))
      assert.throws(() => fs.mkdirSync(d), errno('EEXIST'))
      assert.throws(() => fs.openSync(f, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY), errno('EEXIST'))
      assert.throws(() => fs.statSync(path.join(f, 'below')), errno('ENOTDIR'))
      assert.throws(() => fs.mkdirSync(path.join(f, 'below')), errno('ENOTDIR'))
      assert.throws(() => fs.openSync(d, 'w'), errno('EISDIR'))
      assert.throws(() => fs.unlinkSync(d), (e: NodeJS.ErrnoException) => e.code === 'EISDIR' || e.code === 'EPERM')
      assert.throws(() => fs.rmdirSync(f), errno('ENOTDIR'))
      assert.throws(() => fs.rmdirSync(d), errno('ENOTEMPTY'))
    })

    test('posix: names of 255 bytes work, 256 bytes give ENAMETOOLONG', () => {
      const d = p('d')
      fs.mkdirSync(d)
      const long = 'a'.repeat(250) + 'é'.repeat(2) + 'b' // 255 bytes
      assert.equal(Buffer.byteLength(long), 255)
      fs.writeFileSync(path.join(d, long), 'x')
      assert.deepEqual(fs.readdirSync(d), [long])
      assert.throws(() => fs.writeFileSync(path.join(d, long + 'c'), 'x'), errno('ENAMETOOLONG'))
      assert.throws(() => fs.statSync(path.join(d, 'z'.repeat(256))), errno('ENAMETOOLONG'))
    })

    test('posix: truncate up and down, ftruncate; bytes past a shrink never come back', () => {
      const f = p()
      fs.writeFileSync(f, Buffer.alloc(300_000, 0x61))
      fs.truncateSync(f, 100)
      assert.equal(fs.statSync(f).size, 100)
      fs.truncateSync(f, 400_000) // extend: the old bytes must read as zeros
      const data = fs.readFileSync(f)
      assert.equal(data.length, 400_000)
      assert.ok(data.subarray(0, 100).every((c) => c === 0x61))
      assert.ok(data.subarray(100).every((c) => c === 0))
      const fd = fs.openSync(f, 'r+')
      fs.ftruncateSync(fd, 5)
      assert.equal(fs.fstatSync(fd).size, 5)
      fs.closeSync(fd)
      assert.equal(fs.readFileSync(f, 'latin1'), 'aaaaa')
    })

    test('posix: sparse files read holes as zeros', () => {
      const f = p()
      const fd = fs.openSync(f, 'w+')
      fs.writeSync(fd, Buffer.from('end'), 0, 3, 10 * 1024 * 1024)
      fs.writeSync(fd, Buffer.from('start'), 0, 5, 0)
      fs.fsyncSync(fd)
      fs.closeSync(fd)
      const data = fs.readFileSync(f)
      assert.equal(data.length, 10 * 1024 * 1024 + 3)
      assert.equal(data.subarray(0, 5).toString(), 'start')
      assert.equal(data.subarray(-3).toString(), 'end')
      assert.ok(data.subarray(5, 10 * 1024 * 1024).every((c) => c === 0))
    })

    test('posix: an unlinked file stays readable and writable through open descriptors until closed', () => {
      const f = p()
      fs.writeFileSync(f, 'still here')
      const fd = fs.openSync(f, 'r+')
      fs.unlinkSync(f)
      assert.throws(() => fs.statSync(f), errno('ENOENT'))
      assert.equal(fs.fstatSync(fd).size, 10)
      const buf = Buffer.alloc(10)
      fs.readSync(fd, buf, 0, 10, 0)
      assert.equal(buf.toString(), 'still here')
      fs.writeSync(fd, Buffer.from('!'), 0, 1, 10)
      fs.fsyncSync(fd)
      assert.equal(fs.fstatSync(fd).size, 11)
      fs.closeSync(fd)
      assert.deepEqual(fs.readdirSync(m.mnt).filter((e) => e.startsWith('.fuse_hidden')), [])
    })

    test('posix: fsync, O_APPEND and a 1 MiB write through big_writes', () => {
      const f = p()
      const fd = fs.openSync(f, 'a')
      fs.writeSync(fd, 'one')
      fs.writeSync(fd, 'two')
      fs.fsyncSync(fd)
      fs.closeSync(fd)
      assert.equal(fs.readFileSync(f, 'utf8'), 'onetwo')
      const big = Buffer.alloc(1 << 20)
      for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff
      fs.writeFileSync(f, big)
      assert.ok(fs.readFileSync(f).equals(big))
    })
  })

  describe('posix: names', () => {
    test('posix: rename replaces a file atomically; the old name is gone', () => {
      const a = p('a')
      const b = p('b')
      fs.writeFileSync(a, 'new')
      fs.writeFileSync(b, 'old')
      fs.renameSync(a, b)
      assert.equal(fs.readFileSync(b, 'utf8'), 'new')
      assert.throws(() => fs.statSync(a), errno('ENOENT'))
    })

    test('posix: rename of directories: into another dir, over an empty dir, ENOTEMPTY, EISDIR, ENOTDIR, EINVAL', () => {
      const d1 = p('d')
      const d2 = p('d')
      fs.mkdirSync(path.join(d1, 'sub'), { recursive: true })
      fs.writeFileSync(path.join(d1, 'sub', 'f'), 'deep')
      fs.mkdirSync(d2)
      fs.renameSync(path.join(d1, 'sub'), path.join(d2, 'moved')) // across directories: never EXDEV
      assert.equal(fs.readFileSync(path.join(d2, 'moved', 'f'), 'utf8'), 'deep')
      assert.equal(fs.statSync(d1).nlink, 2)
      assert.equal(fs.statSync(d2).nlink, 3)
      fs.mkdirSync(path.join(d1, 'empty'))
      fs.renameSync(path.join(d2, 'moved'), path.join(d1, 'empty')) // over an empty directory
      assert.equal(fs.readFileSync(path.join(d1, 'empty', 'f'), 'utf8'), 'deep')
      fs.mkdirSync(path.join(d2, 'full'))
      fs.writeFileSync(path.join(d2, 'full', 'x'), 'x')
      assert.throws(() => fs.renameSync(path.join(d1, 'empty'), path.join(d2, 'full')), errno('ENOTEMPTY'))
      fs.writeFileSync(path.join(d2, 'file'), 'f')
      assert.throws(() => fs.renameSync(path.join(d2, 'file'), path.join(d2, 'full')), errno('EISDIR'))
      assert.throws(() => fs.renameSync(path.join(d2, 'full'), path.join(d2, 'file')), errno('ENOTDIR'))
      assert.throws(() => fs.renameSync(d1, path.join(d1, 'empty', 'inside')), errno('EINVAL'))
      assert.throws(() => fs.renameSync(path.join(d2, 'nothing'), path.join(d2, 'x')), errno('ENOENT'))
    })

    test('posix: hard links share the inode number; nlink follows link and unlink', async () => {
      const a = p('a')
      const b = p('b')
      fs.writeFileSync(a, 'linked')
      fs.linkSync(a, b)
      const sa = fs.statSync(a, { bigint: true })
      const sb = fs.statSync(b, { bigint: true })
      assert.equal(sb.ino, sa.ino)
      assert.equal(sb.nlink, 2n)
      fs.appendFileSync(b, '+more')
      // High-level libfuse gives each name its own kernel inode: the other name's cached size
      // is refreshed within attr_timeout (1 s). Bounded wait, see docs/posix.md.
      await waitFor(() => fs.readFileSync(a, 'utf8') === 'linked+more', 3000, 'the write through b to show through a')
      fs.unlinkSync(a)
      assert.equal(fs.readFileSync(b, 'utf8'), 'linked+more')
      // The kernel caches b's attributes for attr_timeout (1 s): wait for the change, bounded.
      await waitFor(() => fs.statSync(b).nlink === 1, 3000, 'nlink to drop to 1')
      assert.throws(() => fs.linkSync(m.mnt, p('dirlink')), errno('EPERM'))
      assert.throws(() => fs.linkSync(b, b), errno('EEXIST'))
    })

    test('posix: symlink and readlink', () => {
      const target = p('t')
      fs.writeFileSync(target, 'via link')
      const l = p('l')
      fs.symlinkSync(path.basename(target), l)
      assert.equal(fs.readlinkSync(l), path.basename(target))
      assert.equal(fs.readFileSync(l, 'utf8'), 'via link')
      assert.ok(fs.lstatSync(l).isSymbolicLink())
      assert.throws(() => fs.readlinkSync(target), errno('EINVAL'))
    })

    test(`posix: ${o.manyFiles} files in one directory`, () => {
      const d = p('many')
      fs.mkdirSync(d)
      for (let i = 0; i < o.manyFiles; i++) fs.writeFileSync(path.join(d, `f${i}`), '')
      const names = fs.readdirSync(d)
      assert.equal(names.length, o.manyFiles)
      assert.equal(new Set(names).size, o.manyFiles)
      assert.equal(fs.statSync(path.join(d, `f${o.manyFiles - 1}`)).size, 0)
      for (let i = 0; i < o.manyFiles; i++) fs.unlinkSync(path.join(d, `f${i}`))
      fs.rmdirSync(d)
    })
  })

  describe('posix: attributes and ownership', () => {
    test('posix: utimensat keeps nanoseconds and honours UTIME_OMIT and UTIME_NOW', () => {
      const f = p()
      fs.writeFileSync(f, 'x')
      execFileSync('touch', ['-m', '-d', '2001-02-03 04:05:06.123456789', f])
      execFileSync('touch', ['-a', '-d', '2010-01-01 00:00:00.987654321', f])
      const st = fs.statSync(f, { bigint: true })
      assert.equal(st.mtimeNs, 981173106123456789n)
      assert.equal(st.atimeNs, 1262304000987654321n)
      execFileSync('touch', ['-a', f]) // atime = now, mtime omitted
      const st2 = fs.statSync(f, { bigint: true })
      assert.equal(st2.mtimeNs, 981173106123456789n)
      assert.ok(st2.atimeNs > 1262304000987654321n)
    })

    test('posix: chmod, and chown with set-ID clearing', () => {
      const f = p()
      fs.writeFileSync(f, 'x')
      fs.chmodSync(f, 0o6755)
      assert.equal(fs.statSync(f).mode & 0o7777, 0o6755)
      fs.chownSync(f, 1000, 1000)
      const st = fs.statSync(f)
      assert.equal(st.uid, 1000)
      assert.equal(st.gid, 1000)
      assert.equal(st.mode & 0o7777, 0o0755, 'chown clears set-user-ID and (group-executable) set-group-ID')
    })

    test('posix: a file created by a non-root user is owned by it; its own chmod works, others are refused', () => {
      const d = p('shared')
      fs.mkdirSync(d, { mode: 0o777 })
      fs.chmodSync(d, 0o777)
      const f = path.join(d, 'mine')
      let r = runAs(1000, 1000, 'touch', [f])
      assert.equal(r.status, 0, r.stderr)
      const st = fs.statSync(f)
      assert.equal(st.uid, 1000)
      assert.equal(st.gid, 1000)
      r = runAs(1000, 1000, 'chmod', ['600', f])
      assert.equal(r.status, 0, r.stderr)
      assert.equal(fs.statSync(f).mode & 0o777, 0o600)
      const rootFile = path.join(d, 'roots')
      fs.writeFileSync(rootFile, 'secret', { mode: 0o600 })
      r = runAs(1000, 1000, 'chmod', ['666', rootFile])
      assert.notEqual(r.status, 0)
      assert.match(r.stderr, /Operation not permitted/)
      r = runAs(1000, 1000, 'chown', ['1001', f])
      assert.notEqual(r.status, 0)
      assert.match(r.stderr, /Operation not permitted/)
      r = runAs(1000, 1000, 'touch', ['-d', '2001-01-01', rootFile])
      assert.notEqual(r.status, 0, 'explicit times on a file one does not own')
    })

    test('posix: permission denials for a non-root user (EACCES)', () => {
      const f = p()
      fs.writeFileSync(f, 'secret', { mode: 0o600 })
      let r = runAs(1000, 1000, 'cat', [f])
      assert.notEqual(r.status, 0)
      assert.match(r.stderr, /Permission denied/)
      const d = p('rootdir')
      fs.mkdirSync(d, { mode: 0o755 })
      r = runAs(1000, 1000, 'touch', [path.join(d, 'nope')])
      assert.notEqual(r.status, 0)
      assert.match(r.stderr, /Permission denied/)
      r = runAs(1000, 1000, '/usr/bin/python3', ['-c', 'import os,sys; print(os.access(sys.argv[1], os.R_OK), os.access(sys.argv[1], os.W_OK))', f])
      assert.equal(r.stdout.trim(), 'False False')
    })

    test('posix: set-group-ID directories pass their group on', () => {
      const d = p('sgid')
      fs.mkdirSync(d)
      fs.chownSync(d, 0, 1234)
      fs.chmodSync(d, 0o2777)
      fs.writeFileSync(path.join(d, 'f'), '')
      fs.mkdirSync(path.join(d, 'sub'))
      assert.equal(fs.statSync(path.join(d, 'f')).gid, 1234)
      assert.equal(fs.statSync(path.join(d, 'sub')).gid, 1234)
      assert.ok(fs.statSync(path.join(d, 'sub')).mode & 0o2000)
    })

    test('posix: extended attributes: set, get, list, remove, create/replace flags', () => {
      const f = p()
      fs.writeFileSync(f, '')
      const out = py(
        `
  import os, sys, errno
  f = sys.argv[1]
  os.setxattr(f, 'user.color', b'blue')
  os.setxattr(f, 'user.empty', b'')
  print(os.getxattr(f, 'user.color').decode(), sorted(os.listxattr(f)))
  try: os.setxattr(f, 'user.color', b'x', os.XATTR_CREATE)
  except OSError as e: print(errno.errorcode[e.errno])
  try: os.setxattr(f, 'user.none', b'x', os.XATTR_REPLACE)
  except OSError as e: print(errno.errorcode[e.errno])
  os.removexattr(f, 'user.color')
  try: os.getxattr(f, 'user.color')
  except OSError as e: print(errno.errorcode[e.errno])
  print(sorted(os.listxattr(f)))
  `,
        f,
      )
      assert.equal(out, "blue ['user.color', 'user.empty']\nEEXIST\nENODATA\nENODATA\n['user.empty']\n")
      const big = execFileSync('getfattr', ['--only-values', '-n', 'user.empty', f])
      assert.equal(big.length, 0)
    })

    test('posix: a write drops security.capability, set before the open or while the file is open', () => {
      // The kernel asks for security.capability before each write and removes it when set;
      // PolyFS answers that question from the open file (src/fs/filesystem.ts getxattr).
      const f = p()
      const out = py(
        `
  import os, sys, errno
  f = sys.argv[1]
  cap = bytes.fromhex('0100000200040000000000000000000000000000')  # v2, effective, cap_net_bind_service
  def caps():
    try: return os.getxattr(f, 'security.capability').hex()
    except OSError as e: return errno.errorcode[e.errno]
  open(f, 'wb').close()
  fd = os.open(f, os.O_WRONLY)
  os.write(fd, b'a')
  print(caps())
  os.setxattr(f, 'security.capability', cap)
  print(caps() == cap.hex())
  os.write(fd, b'b')
  print(caps())
  os.close(fd)
  os.setxattr(f, 'security.capability', cap)
  fd = os.open(f, os.O_WRONLY | os.O_APPEND)
  os.write(fd, b'c')
  os.close(fd)
  print(caps(), open(f, 'rb').read().decode())
  `,
        f,
      )
      assert.equal(out, 'ENODATA\nTrue\nENODATA\nENODATA abc\n')
    })

    test('posix: fifos, sockets and device nodes', () => {
      const fifo = p('fifo')
      execFileSync('mkfifo', [fifo])
      assert.ok(fs.statSync(fifo).isFIFO())
      const sock = p('sock')
      py('import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])', sock)
      assert.ok(fs.statSync(sock).isSocket())
      const dev = p('null')
      execFileSync('mknod', [dev, 'c', '1', '3'])
      const st = fs.statSync(dev)
      assert.ok(st.isCharacterDevice())
      assert.equal(st.rdev, (1 << 8) | 3)
    })

    test('posix: statfs reports the store capacity', () => {
      const s = fs.statfsSync(m.mnt)
      assert.ok(s.blocks > 0)
      assert.ok(s.bavail > 0 && s.bavail <= s.blocks)
      const out = execFileSync('df', ['-P', m.mnt], { encoding: 'utf8' })
      assert.match(out, /polyfs/)
    })
  })

  describe('posix: large data', () => {
    test(`posix: a ${o.bigMiB} MiB file written and read back with matching checksums`, async () => {
      const f = p('big')
      const chunk = Buffer.alloc(1 << 20)
      const wrote = createHash('sha256')
      const fd = fs.openSync(f, 'w')
      for (let i = 0; i < o.bigMiB; i++) {
        chunk.writeUInt32LE(i, 0)
        chunk.writeUInt32LE((i * 2654435761) >>> 0, chunk.length - 4)
        chunk.fill(i & 0xff, 4, 64)
        fs.writeSync(fd, chunk)
        wrote.update(chunk)
      }
      fs.fsyncSync(fd)
      fs.closeSync(fd)
      assert.equal(fs.statSync(f).size, o.bigMiB << 20)
      spawnSync('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches'])
      const read = createHash('sha256')
      await new Promise<void>((resolve, reject) => fs.createReadStream(f, { highWaterMark: 1 << 20 }).on('data', (d) => read.update(d)).on('end', resolve).on('error', reject))
      assert.equal(read.digest('hex'), wrote.digest('hex'))
      fs.unlinkSync(f)
    })
  })
}
