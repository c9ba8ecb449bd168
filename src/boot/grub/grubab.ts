/**
 * The standalone GRUB A/B script (assets/grub-ab/ab.cfg): darch's counting logic for any two
 * or more menu entries, without darch, as proposed in Darch issue #32. The file in assets/
 * is this function's output (a unit test keeps them equal); `ab-commit` is its shell side.
 *
 * Variables (in two copies of a GRUB environment block, `ab_seq`/`ab_seal` as in darch):
 *   ab_default   menu entry id booted normally (the last good one)
 *   ab_try       menu entry id to try;  ab_tries  tries left
 *   ab_fell_back 1 after a try ran out; ab_bad    entry ids that failed
 */
export const AB_MAX_TRIES = 9;

export function renderAbScript(maxTries = AB_MAX_TRIES): string {
  const vars = ['ab_seq', 'ab_default', 'ab_try', 'ab_tries', 'ab_fell_back', 'ab_bad', 'ab_seal'];
  const clear = vars.map((v) => `\t\tset ${v}=""`).join('\n');
  const countdown: string[] = [];
  for (let n = maxTries; n >= 1; n--) {
    countdown.push(`\t${n === maxTries ? 'if' : 'elif'} [ "\${ab_tries}" = "${n}" ]; then`, `\t\tset ab_tries=${n - 1}`, '\t\tset ab_mode=try');
  }
  return `# GRUB A/B boot counting (from darch; docs: assets/grub-ab/README.md). Generated: do not edit.
# Source it from grub.cfg after your menu entries are known by id (menuentry ... --id NAME):
#   set ab_dir=/EFI/ab        # where ab.env and ab.env.bak live (created by \`ab-commit init\`)
#   source /EFI/ab/ab.cfg
# It sets "default" to the entry to boot and "ab_cmdline" to ab.try=1 / ab.fell_back=1;
# append \${ab_cmdline} to your linux lines so the booted system can tell.
insmod loadenv
insmod test
if [ -z "\${ab_dir}" ]; then set ab_dir=/EFI/ab; fi
if [ -z "\${ab_dev}" ]; then search --no-floppy --file --set=ab_dev \${ab_dir}/ab.env; fi
if [ -z "\${ab_dev}" ]; then search --no-floppy --file --set=ab_dev \${ab_dir}/ab.env.bak; fi
set ab_file=""
for ab_copy in ab.env ab.env.bak; do
	if [ -z "\${ab_file}" ]; then
${clear}
		if [ -f "(\${ab_dev})\${ab_dir}/\${ab_copy}" ]; then
			load_env --skip-sig --file "(\${ab_dev})\${ab_dir}/\${ab_copy}" ${vars.join(' ')}
			if [ -n "\${ab_seq}" ]; then
				if [ "\${ab_seq}" = "\${ab_seal}" ]; then set ab_file="(\${ab_dev})\${ab_dir}/\${ab_copy}"; fi
			fi
		fi
	fi
done
set ab_mode=normal
set ab_cmdline=""
if [ -n "\${ab_file}" ]; then
	if [ -n "\${ab_try}" ]; then
${countdown.join('\n')}
		else
			set ab_bad="\${ab_bad} \${ab_try}"
			set ab_fell_back=1
			set ab_try=""
			set ab_tries=0
			set ab_mode=fallback
		fi
		set ab_seq="\${ab_seq}g"
		set ab_seal="\${ab_seq}"
		set ab_expect="\${ab_tries}:\${ab_try}:\${ab_seq}"
		save_env --file "(\${ab_dev})\${ab_dir}/ab.env" ${vars.join(' ')}
		save_env --file "(\${ab_dev})\${ab_dir}/ab.env.bak" ${vars.join(' ')}
		set ab_tries=""
		set ab_try=""
		set ab_seq=""
		load_env --skip-sig --file "\${ab_file}" ab_tries ab_try ab_seq
		if [ "\${ab_tries}:\${ab_try}:\${ab_seq}" != "\${ab_expect}" ]; then set ab_mode=unrecorded; fi
	fi
	if [ "\${ab_mode}" = "try" ]; then
		set default="\${ab_try}"
		set fallback="\${ab_default}"
		set ab_cmdline="ab.try=1"
	elif [ -n "\${ab_default}" ]; then
		set default="\${ab_default}"
	fi
	if [ "\${ab_mode}" = "fallback" ]; then set ab_cmdline="ab.fell_back=1"; fi
fi
export ab_cmdline
`;
}
