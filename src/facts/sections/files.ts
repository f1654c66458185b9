import { quote } from 'shell-quote';
import { FactsParseError } from '../format.js';
import { parseFileSection } from '../parsers/files.js';
import type { FileFact } from '../types.js';
import type { FactSection, ParseContext } from './section.js';

/** Its part of HostFacts. */
export interface FilesFacts {
  files: Record<string, FileFact>;
}

export function checkFactsPath(path: string): string {
  if (typeof path !== 'string' || !path.startsWith('/')) throw new Error(`invalid file path ${JSON.stringify(path)}: not absolute`);
  if (/[\0\n]/.test(path)) throw new Error(`invalid file path ${JSON.stringify(path)}: contains NUL or newline`);
  return path;
}

/**
 * `fileinfo NAME PATH [NAME PATH]...`: a NAME section per PATH (parseFileSection), for all of them
 * a fixed number of processes: one realpath, one stat (the directories, and every path that is not a
 * symlink), one stat -L (the symlinks, when there are any), one sha256sum, one cat | base64. The
 * readable files' bytes, in order, are one `file-blob` section after them (each file says
 * blob=OFFSET SIZE, sizes from stat); a file without a size, or a blob whose length is not what the
 * sizes say (a file changed meanwhile), gets its own content=.
 * Where realpath cannot do them all (no -m: busybox; an error; a resolved path with a newline, which
 * would shift every line after it) each path goes through `fileinfo1`, one at a time as before.
 * The shell walks its lists with parameter expansions (no heredoc: dash forks for one over 4 KiB).
 */
const FILEINFO = String.raw`# fileinfo1 NAME PATH: one file (see fileinfo)
fileinfo1() {
  b "$1"
  printf 'path=%s\n' "$2"
  if _rp=$(realpath -m -- "$2" 2>/dev/null) || _rp=$(readlink -f -- "$2" 2>/dev/null); then printf 'realpath=%s\n' "$_rp"; else _rp=$2; fi
  if fi_dir "${'$'}{_rp%/*}" && _s=$(stat -c '%u %g %a %n' -- "$_d" 2>/dev/null); then printf 'dir=%s\n' "$_s"; fi
  if [ -L "$2" ]; then
    printf 'link=1\n'
    if fi_dir "${'$'}{2%/*}" && _s=$(stat -c '%u %g %a %n' -- "$_d" 2>/dev/null); then printf 'link_dir=%s\n' "$_s"; fi
  fi
  if [ -L "$2" ] && [ ! -e "$2" ]; then
    printf 'exists=1\ntype=dangling\n'
  elif [ -e "$2" ]; then
    printf 'exists=1\n'
    if [ -f "$2" ]; then _t=file; elif [ -d "$2" ]; then _t=dir; else _t=other; fi
    printf 'type=%s\n' "$_t"
    if _m=$(stat -L -c '%a %u %g' -- "$2" 2>/dev/null); then printf 'mode=%s\nowner=%s\n' "${'$'}{_m%% *}" "${'$'}{_m#* }"; fi
    if [ "$_t" = file ]; then
      if [ -r "$2" ]; then
        if _h=$(sha256sum <"$2" 2>/dev/null); then printf 'sha256=%s\n' "${'$'}{_h%% *}"; fi
        fi_content "$2"
      else
        printf 'readable=0\n'
      fi
    fi
  else
    printf 'exists=0\n'
  fi
  e "$1" 0
}
# fi_dir PATH: _d = the nearest existing directory at or above PATH (/ at the latest)
fi_dir() { _d=$1; while [ -n "$_d" ] && [ ! -d "$_d" ]; do _d=${'$'}{_d%/*}; done; [ -n "$_d" ] || _d=/; }
# fi_content PATH: content= with the file's bytes in base64 (or why not)
fi_content() {
  if have base64 && b64_probe && _c=$(b64 <"$1"); then printf 'content=%s\n' "$_c"; else printf 'content-error=no base64\n'; fi
}
# fi_find KIND NAME TEXT: _s = the line of TEXT (stat or sha256sum output) about NAME
fi_find() {
  _s=; _fq=$3$NL
  while [ -n "$_fq" ]; do
    _fl=${'$'}{_fq%%"$NL"*}; _fq=${'$'}{_fq#*"$NL"}
    case $1 in stat) _fx=${'$'}{_fl#* * * * } ;; sha) _fx=${'$'}{_fl#*  } ;; esac
    if [ "$_fx" = "$2" ]; then _s=$_fl; return 0; fi
  done
  return 1
}
# fi_stat PATH TEXT: _u _g _a _sz = uid, gid, mode and size of PATH from TEXT's stat lines
fi_stat() {
  fi_find stat "$1" "$2" || return 1
  _u=${'$'}{_s%% *}; _s=${'$'}{_s#* }; _g=${'$'}{_s%% *}; _s=${'$'}{_s#* }; _a=${'$'}{_s%% *}; _s=${'$'}{_s#* }; _sz=${'$'}{_s%% *}
}
# fi_add VAR ITEM: append ITEM and a newline to the list in VAR unless it is there
fi_add() { eval "_fa=\$$1"; case $NL$_fa in *"$NL$2$NL"*) ;; *) eval "$1=\$_fa\$2\$NL" ;; esac; }
fileinfo() {
  [ $# -gt 1 ] || return 0
  # _Q: per path NAME PATH, its resolved path; _P: the paths, one a line
  _Q=; _P=; _n=0
  while [ $# -gt 1 ]; do _Q=$_Q$1' '$2$NL; _P=$_P$2$NL; _n=$((_n + 1)); shift 2; done
  _ifs=$IFS; IFS=$NL; set -f
  _R=; have realpath && _R=$(realpath -m -- $_P 2>/dev/null)$NL || _R=
  IFS=$_ifs; set +f
  nlines "$_R"
  if [ "$_c" != "$_n" ]; then
    _q=$_Q
    while [ -n "$_q" ]; do pop; fileinfo1 "${'$'}{_v%% *}" "${'$'}{_v#* }"; done
    return 0
  fi
  # what each path is (tested once): _W = per path 5 lines: NAME PATH, resolved path, kind
  # (link L or -, then D dangling, E exists or N, then f file, d dir, o other or -, then r readable or -),
  # directory above the resolved path, directory above the link ("" when no link)
  _W=; _D=; _E=; _F=; _q=$_Q; _r=$_R
  while [ -n "$_q" ]; do
    pop; _nm=$_v; _p=${'$'}{_v#* }
    _rp=${'$'}{_r%%"$NL"*}; _r=${'$'}{_r#*"$NL"}
    if [ -L "$_p" ]; then _k=L; else _k=-; fi
    if [ -L "$_p" ] && [ ! -e "$_p" ]; then _k=${'$'}{_k}D-
    elif [ -e "$_p" ]; then
      if [ -f "$_p" ]; then _k=${'$'}{_k}Ef; elif [ -d "$_p" ]; then _k=${'$'}{_k}Ed; else _k=${'$'}{_k}Eo; fi
      # a symlink's mode and owner are its target's (stat -L); anything else is stat'ed with the directories
      case $_k in L*) fi_add _E "$_p" ;; *) fi_add _D "$_p" ;; esac
    else _k=${'$'}{_k}N-; fi
    # not deduplicated: each NAME section of a file takes its own bytes of the blob
    if [ "$_k" != "${'$'}{_k%Ef}" ] && [ -r "$_p" ]; then _k=${'$'}{_k}r; _F=$_F$_p$NL; else _k=${'$'}{_k}-; fi
    fi_dir "${'$'}{_rp%/*}"; _d1=$_d; fi_add _D "$_d"
    _d2=; case $_k in L*) fi_dir "${'$'}{_p%/*}"; _d2=$_d; fi_add _D "$_d" ;; esac
    _W=$_W$_nm$NL$_rp$NL$_k$NL$_d1$NL$_d2$NL
  done
  IFS=$NL; set -f
  _DS=$(stat -c '%u %g %a %s %n' -- $_D 2>/dev/null)
  _ES=; [ -z "$_E" ] || _ES=$(stat -L -c '%u %g %a %s %n' -- $_E 2>/dev/null)
  _HS=; [ -z "$_F" ] || ! have sha256sum || _HS=$(sha256sum -- $_F 2>/dev/null)
  IFS=$_ifs; set +f
  # the readable files' bytes in one blob, when every size is known and the blob has them all
  _C=; _blob=
  if [ -n "$_F" ] && have base64; then
    _tot=0; _q=$_F
    # (a file is in one of the two: a symlink in _ES, else in _DS)
    while [ -n "$_q" ]; do pop; if fi_stat "$_v" "$_ES" || fi_stat "$_v" "$_DS"; then _tot=$((_tot + _sz)); else _tot=; break; fi; done
    if [ -n "$_tot" ]; then
      # (not b64 in the $(...): it could not remember which base64 worked, and b64_probe costs a process)
      IFS=$NL; set -f
      if [ "${'$'}{_b64:-}" != tr ] && _C=$(cat -- $_F 2>/dev/null | base64 -w0 2>/dev/null); then _b64=w0
      else _b64=tr; _C=$(cat -- $_F 2>/dev/null | base64 2>/dev/null | tr -d '\n'); fi
      IFS=$_ifs; set +f
      # its length in bytes, exactly: 3 per 4 characters less the padding
      case $_C in *==) _pad=2 ;; *=) _pad=1 ;; *) _pad=0 ;; esac
      [ $((${'$'}{#_C} % 4)) = 0 ] && [ $((${'$'}{#_C} / 4 * 3 - _pad)) = "$_tot" ] && _blob=1
    fi
  fi
  _off=0; _q=$_W
  while [ -n "$_q" ]; do
    pop; _nm=${'$'}{_v%% *}; _p=${'$'}{_v#* }; pop; _rp=$_v; pop; _k=$_v; pop; _d1=$_v; pop; _d2=$_v
    b "$_nm"
    printf 'path=%s\nrealpath=%s\n' "$_p" "$_rp"
    if fi_stat "$_d1" "$_DS"; then printf 'dir=%s %s %s %s\n' "$_u" "$_g" "$_a" "$_d1"; fi
    case $_k in L*)
      printf 'link=1\n'
      if fi_stat "$_d2" "$_DS"; then printf 'link_dir=%s %s %s %s\n' "$_u" "$_g" "$_a" "$_d2"; fi ;;
    esac
    case $_k in
      ?D*) printf 'exists=1\ntype=dangling\n' ;;
      ?E*)
        case $_k in ??f*) _t=file ;; ??d*) _t=dir ;; *) _t=other ;; esac
        printf 'exists=1\ntype=%s\n' "$_t"
        case $_k in L*) _s=$_ES ;; *) _s=$_DS ;; esac
        if fi_stat "$_p" "$_s"; then printf 'mode=%s\nowner=%s %s\n' "$_a" "$_u" "$_g"; else _sz=; fi
        if [ "$_t" = file ]; then
          case $_k in
            *r)
              if fi_find sha "$_p" "$_HS"; then printf 'sha256=%s\n' "${'$'}{_s%% *}"; fi
              if [ -n "$_blob" ]; then printf 'blob=%s %s\n' "$_off" "$_sz"; _off=$((_off + _sz)); else fi_content "$_p"; fi ;;
            *) printf 'readable=0\n' ;;
          esac
        fi ;;
      *) printf 'exists=0\n' ;;
    esac
    e "$_nm" 0
  done
  if [ -n "$_blob" ]; then b file-blob; printf '%s\n' "$_C"; e file-blob 0; fi
}
`;

/** The files the plan edits or compares: type, mode, owner, sha256, content, resolved path (fileinfo). */
export const files: FactSection<FilesFacts> = {
  id: 'files',
  repeated: ['file', 'file-blob'],
  helpers: FILEINFO,
  files: (req) => [...new Set(req.files)].map(checkFactsPath).map((p) => ['file', p] as [string, string]),
  shell: () => [],
  parse(ctx) {
    const out: Record<string, FileFact> = {};
    for (const f of fileFacts(ctx, 'file')) {
      out[f.path] = f;
      if (f.exists && f.type === 'file' && f.readable === false) ctx.incomplete.push({ section: 'file', reason: `${f.path}: unreadable` });
    }
    return { files: out };
  },
};

/** The `fileinfo` line for these (section name, path) pairs. */
export const fileinfoLine = (pairs: [string, string][]) => (pairs.length ? [`  fileinfo ${quote(pairs.flat())}`] : []);

/** Every NAME section of fileinfo, its content from the `file-blob` section after it where it says blob=. */
export function fileFacts(ctx: Pick<ParseContext, 'sections'>, name: string): FileFact[] {
  const blobs = new Map<number, Buffer>();
  const blobAfter = (i: number): Buffer | undefined => {
    const j = ctx.sections.findIndex((s, k) => k > i && s.name === 'file-blob');
    if (j < 0) return undefined;
    if (!blobs.has(j)) {
      const text = ctx.sections[j]!.body.trim();
      if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw new FactsParseError('file-blob', 'not base64', text.slice(0, 80));
      blobs.set(j, Buffer.from(text, 'base64'));
    }
    return blobs.get(j);
  };
  return ctx.sections.flatMap((s, i) => (s.name === name ? [parseFileSection(s.body, name, () => blobAfter(i))] : []));
}
