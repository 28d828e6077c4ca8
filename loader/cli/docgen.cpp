#include "cli/docgen.h"

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

}  // namespace ipsnat::cli
