#include "cli/docgen.h"

#include <functional>
#include <sstream>
#include <vector>

namespace ipsnat::cli {

namespace {

// What the generators need of the definition: every visible verb (nested ones by their path,
// "flows flush") and, per verb, its visible options.
struct Verb {
  std::string path;  // "" for the program itself
  const CLI::App* app;
};

std::vector<const CLI::App*> visible_subcommands(const CLI::App& app) {
  return app.get_subcommands([](const CLI::App* s) { return !s->get_group().empty(); });
}

void collect(const CLI::App& app, const std::string& path, std::vector<Verb>& out) {
  out.push_back({path, &app});
  for (const CLI::App* sub : visible_subcommands(app)) collect(*sub, path.empty() ? sub->get_name() : path + " " + sub->get_name(), out);
}

std::vector<Verb> verbs_of(const CLI::App& app) {
  std::vector<Verb> out;
  collect(app, "", out);
  return out;
}

std::vector<const CLI::Option*> named_options(const CLI::App& app) {
  return app.get_options([](const CLI::Option* o) { return o->nonpositional() && !o->get_group().empty(); });
}

std::vector<const CLI::Option*> positionals(const CLI::App& app) {
  return app.get_options([](const CLI::Option* o) { return !o->nonpositional() && o->get_positional(); });
}

bool takes_value(const CLI::Option* o) { return o->get_expected_min() > 0; }

std::vector<std::string> spellings(const CLI::Option* o) {
  std::vector<std::string> s;
  for (const auto& n : o->get_snames()) s.push_back("-" + n);
  for (const auto& n : o->get_lnames()) s.push_back("--" + n);
  return s;
}

// The allowed values of an option checked with CLI::IsMember: CLI11 names them in its type
// name as "TEXT:{a,b,c}".
std::vector<std::string> members(const CLI::Option* o) {
  std::string t = o->get_type_name();
  auto open = t.find('{'), close = t.rfind('}');
  std::vector<std::string> out;
  if (open == std::string::npos || close == std::string::npos || close < open) return out;
  std::stringstream in(t.substr(open + 1, close - open - 1));
  for (std::string m; std::getline(in, m, ',');) out.push_back(m);
  return out;
}

// The value's name in a synopsis: the members, else CLI11's type without its checks.
std::string value_name(const CLI::Option* o) {
  auto m = members(o);
  if (!m.empty()) {
    std::string s;
    for (const auto& v : m) s += (s.empty() ? "" : "|") + v;
    return s;
  }
  std::string t = o->get_type_name();
  return t.substr(0, t.find(':'));
}

// How a verb's positional argument completes: a device of the system, or one ipsnat is attached
// to (detach), or nothing known.
std::string arg_completer(const Verb& v, const CLI::Option* o) {
  if (o->get_name() != "DEV") return "";
  return v.path == "detach" ? "attached" : "links";
}

// --- roff ---------------------------------------------------------------------------------

std::string roff_text(const std::string& s) {
  std::string out;
  bool line_start = true;
  for (char c : s) {
    if (line_start && (c == '.' || c == '\'')) out += "\\&";
    if (c == '\\')
      out += "\\e";
    else
      out += c;
    line_start = c == '\n';
  }
  return out;
}

std::string roff_option_name(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '-' ? std::string("\\-") : std::string(1, c);
  return out;
}

void man_option(std::ostringstream& m, const CLI::Option* o) {
  m << ".TP\n";
  std::string sep;
  for (const auto& s : spellings(o)) {
    m << sep << "\\fB" << roff_option_name(s) << "\\fR";
    sep = ", ";
  }
  if (takes_value(o)) m << " \\fI" << roff_text(value_name(o)) << "\\fR";
  m << "\n" << roff_text(o->get_description());
  if (!o->get_default_str().empty()) m << " (default: " << roff_text(o->get_default_str()) << ")";
  m << "\n";
}

std::string usage(const Verb& v) {
  std::string s = "ipsnat " + v.path;
  if (!named_options(*v.app).empty()) s += " [OPTIONS]";
  for (const CLI::Option* p : positionals(*v.app))
    s += p->get_required() ? " " + p->get_name() : " [" + p->get_name() + "]";
  if (!visible_subcommands(*v.app).empty()) s += " [VERB]";
  return s;
}

// --- shell data ----------------------------------------------------------------------------

// A shell function `NAME PATH` that prints the words of `field(verb)` for the verb at PATH
// (a case over every verb path); field returns lines, in the form the shell wants them.
std::string case_function(const std::string& name, const std::vector<Verb>& verbs,
                          const std::function<std::vector<std::string>(const Verb&)>& field) {
  std::ostringstream s;
  s << name << "() {\n  case $1 in\n";
  for (const Verb& v : verbs) {
    auto words = field(v);
    if (words.empty()) continue;
    s << "    \"" << v.path << "\") printf '%s\\n'";
    for (const auto& w : words) {
      std::string q;
      for (char c : w) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
      s << " '" << q << "'";
    }
    s << " ;;\n";
  }
  s << "  esac\n}\n";
  return s.str();
}

// The data both shells share: verbs, options, which options take a value, their values,
// the positional arguments' completers. `described`: "word:description" for zsh's _describe.
std::string shell_data(const CLI::App& app, bool described) {
  auto verbs = verbs_of(app);
  auto describe = [&](const std::string& word, const std::string& desc) {
    if (!described) return word;
    std::string d = desc.substr(0, desc.find('\n'));
    std::string w;
    for (char c : word) w += c == ':' ? std::string("\\:") : std::string(1, c);
    return w + ":" + d;
  };
  std::string s;
  s += case_function("_ipsnat_verbs", verbs, [&](const Verb& v) {
    std::vector<std::string> out;
    for (const CLI::App* sub : visible_subcommands(*v.app)) out.push_back(describe(sub->get_name(), sub->get_description()));
    return out;
  });
  s += case_function("_ipsnat_options", verbs, [&](const Verb& v) {
    std::vector<std::string> out;
    for (const CLI::Option* o : named_options(*v.app))
      for (const auto& n : spellings(o)) out.push_back(describe(n, o->get_description()));
    return out;
  });
  s += case_function("_ipsnat_valued", verbs, [&](const Verb& v) {
    std::vector<std::string> out;
    for (const CLI::Option* o : named_options(*v.app))
      if (takes_value(o))
        for (const auto& n : spellings(o)) out.push_back(n);
    return out;
  });
  // Values per "PATH OPTION": the members, or @files / @dirs for an option typed FILE / DIR.
  s += "_ipsnat_values() {\n  case \"$1\" in\n";
  for (const Verb& v : verbs)
    for (const CLI::Option* o : named_options(*v.app)) {
      if (!takes_value(o)) continue;
      std::string type = value_name(o), words;
      for (const auto& w : members(o)) words += " " + w;
      if (type == "FILE") words = " @files";
      if (type == "DIR") words = " @dirs";
      if (words.empty()) continue;
      std::string pat, sep;
      for (const auto& n : spellings(o)) {
        pat += sep + "\"" + (v.path.empty() ? n : v.path + " " + n) + "\"";
        sep = "|";
      }
      s += "    " + pat + ") printf '%s\\n'" + words + " ;;\n";
    }
  s += "  esac\n}\n";
  s += case_function("_ipsnat_args", verbs, [&](const Verb& v) {
    std::vector<std::string> out;
    for (const CLI::Option* p : positionals(*v.app))
      if (auto c = arg_completer(v, p); !c.empty()) out.push_back("@" + c);
    return out;
  });
  return s;
}

// Devices: the system's, and those ipsnat is attached to in this network namespace (the
// attach records STATE_DIR/<netns inode>@<dev>.json, docs/attach.md).
constexpr const char* kDeviceFunctions = R"SH(_ipsnat_links() {
  ip -o link show 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'
}
_ipsnat_attached() {
  local ns
  ns=$(stat -L -c %i /proc/self/ns/net 2>/dev/null) || return 0
  find "${IPSNAT_STATE_DIR:-/run/ipsnat}" -maxdepth 1 -name "$ns@*.json" -printf '%f\n' 2>/dev/null |
    sed -e 's/^[^@]*@//' -e 's/\.json$//'
}
# _ipsnat_path WORD...: the verb path the words name ("flows flush"), skipping options and
# the values of those that take one (global options are valid after a verb too).
_ipsnat_path() {
  local verb_path= skip=0 w
  for w in "$@"; do
    if ((skip)); then skip=0; continue; fi
    if [[ $w == -* ]]; then
      [[ $w != *=* ]] && _ipsnat_takes_value "$verb_path" "$w" && skip=1
      continue
    fi
    if _ipsnat_has "$(_ipsnat_verbs "$verb_path" | sed 's/:.*//')" "$w"; then verb_path=${verb_path:+$verb_path }$w; fi
  done
  printf '%s\n' "$verb_path"
}
_ipsnat_takes_value() {
  _ipsnat_has "$(_ipsnat_valued "$1"; _ipsnat_valued "")" "$2"
}
# _ipsnat_has LINES WORD: whether WORD is one of LINES. Not `... | grep -q`: grep exits at the
# first match, a write after that kills the writer with SIGPIPE, and under the user's
# `set -o pipefail` the pipeline then fails although the word was found.
_ipsnat_has() {
  case $'\n'"$1"$'\n' in *$'\n'"$2"$'\n'*) return 0 ;; esac
  return 1
}
)SH";

}  // namespace

std::string man_sections(const CLI::App& app) {
  std::ostringstream m;
  m << ".SH OPTIONS\nThese options are valid before or after the verb.\n";
  for (const CLI::Option* o : named_options(app)) man_option(m, o);
  m << ".SH COMMANDS\n";
  for (const Verb& v : verbs_of(app)) {
    if (v.path.empty()) continue;
    m << ".SS \"" << roff_option_name(usage(v)) << "\"\n" << roff_text(v.app->get_description()) << "\n";
    for (const CLI::Option* p : positionals(*v.app)) {
      m << ".TP\n\\fI" << p->get_name() << "\\fR\n" << roff_text(p->get_description()) << "\n";
    }
    for (const CLI::Option* o : named_options(*v.app))
      if (o != v.app->get_help_ptr()) man_option(m, o);
    if (std::string f = v.app->get_footer(); !f.empty() && f != app.get_footer()) m << ".PP\n" << roff_text(f) << "\n";
  }
  return m.str();
}

std::string bash_completion(const CLI::App& app) {
  std::string s = "# bash completion for ipsnat, generated from its command-line definition (ipsnat --completion bash)\n";
  s += shell_data(app, false);
  s += kDeviceFunctions;
  s += R"SH(_ipsnat() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]} verb_path w words=()
  verb_path=$(_ipsnat_path "${COMP_WORDS[@]:1:COMP_CWORD-1}")
  COMPREPLY=()
  if [[ $prev == -* && $prev != *=* ]] && _ipsnat_takes_value "$verb_path" "$prev"; then
    words=$(_ipsnat_values "${verb_path:+$verb_path }$prev")
    [[ -n $words ]] || words=$(_ipsnat_values "$prev")
    if [[ $words == @files ]]; then
      COMPREPLY=($(compgen -f -- "$cur"))
    elif [[ $words == @dirs ]]; then
      COMPREPLY=($(compgen -d -- "$cur"))
    else
      COMPREPLY=($(compgen -W "$words" -- "$cur"))
    fi
    return 0
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$( { _ipsnat_options "$verb_path"; _ipsnat_options ""; } | sort -u)" -- "$cur"))
    return 0
  fi
  words=$(_ipsnat_verbs "$verb_path")
  for w in $(_ipsnat_args "$verb_path"); do
    case $w in
      @links) words+=$'\n'$(_ipsnat_links) ;;
      @attached) words+=$'\n'$(_ipsnat_attached) ;;
    esac
  done
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _ipsnat ipsnat
)SH";
  return s;
}

std::string zsh_completion(const CLI::App& app) {
  std::string s = "#compdef ipsnat\n# zsh completion for ipsnat, generated from its command-line definition (ipsnat --completion zsh)\n";
  s += shell_data(app, true);
  s += kDeviceFunctions;
  s += R"SH(_ipsnat() {
  local cur=${words[CURRENT]} prev=${words[CURRENT-1]} verb_path w
  local -a items
  verb_path=$(_ipsnat_path "${(@)words[2,CURRENT-1]}")
  if [[ $prev == -* && $prev != *=* ]] && _ipsnat_takes_value "$verb_path" "$prev"; then
    items=(${(f)"$(_ipsnat_values "${verb_path:+$verb_path }$prev")"})
    (( ${#items} )) || items=(${(f)"$(_ipsnat_values "$prev")"})
    case ${items[1]} in
      @files) _files ;;
      @dirs) _files -/ ;;
      *) compadd -a items ;;
    esac
    return
  fi
  if [[ $cur == -* ]]; then
    items=(${(uf)"$(_ipsnat_options "$verb_path"; _ipsnat_options "")"})
    _describe -t options option items
    return
  fi
  items=(${(f)"$(_ipsnat_verbs "$verb_path")"})
  (( ${#items} )) && _describe -t verbs verb items
  for w in ${(f)"$(_ipsnat_args "$verb_path")"}; do
    case $w in
      @links) items=(${(f)"$(_ipsnat_links)"}); compadd -a items ;;
      @attached) items=(${(f)"$(_ipsnat_attached)"}); compadd -a items ;;
    esac
  done
}
_ipsnat "$@"
)SH";
  return s;
}

}  // namespace ipsnat::cli
