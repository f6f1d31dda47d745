// The tools' entry point: ArgumentParser's parsing, with a usage error reported as every other
// error is, on one line (`tool: problem (see tool --help)`) with status 64, rather than
// ArgumentParser's three lines of "Error:", usage and a hint.

import ArgumentParser
import Foundation

extension ParsableCommand {
    /// Parses the command line and runs the tool; `--help` and `--version` print to stdout.
    public static func mainAsTool(_ given: [String] = Array(CommandLine.arguments.dropFirst())) -> Never {
        Tool.holdClosedStandardDescriptors()
        let name = configuration.commandName ?? "\(Self.self)".lowercased()
        // CommandLine.arguments decodes with U+FFFD for bytes that are not UTF-8, so a file
        // name of such bytes named another file: refused, for it cannot be named faithfully.
        for i in 1..<Int(CommandLine.argc) {
            guard let raw = CommandLine.unsafeArgv[i], String(validatingCString: raw) == nil else { continue }
            let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(raw).assumingMemoryBound(to: UInt8.self), count: strlen(raw))
            let shown = bytes.map { $0 < 0x80 && $0 >= 0x20 ? String(UnicodeScalar($0)) : "\\x" + String($0, radix: 16) }.joined()
            writeStandardError("\(name): argument \(i) '\(shown)' is not valid UTF-8; the tools take UTF-8 names (see \(name) --help)\n")
            Glibc.exit(ExitStatus.usage)
        }
        let arguments = getoptArguments(given, help: helpMessage())
        func fail(_ error: Error) -> Never {
            guard exitCode(for: error) != .success else {
                print(fullMessage(for: error))  // --help, --version
                if fflush(stdout) != 0 || ferror(stdout) != 0 {  // > /dev/full
                    writeStandardError("\(name): stdout: \(String(cString: strerror(errno)))\n")
                    Glibc.exit(ExitStatus.ioError)
                }
                Glibc.exit(ExitStatus.ok)
            }
            // ArgumentParser runs validate() before it reports an unknown option, so `normalize
            // --bogus` said "choose one of --scale, …": name the unknown option first.
            let problem = unknownOption(in: arguments, help: helpMessage()).map { "unknown option '\($0)'" }
                ?? usageProblem(message(for: error), arguments: arguments)
            writeStandardError("\(name): \(problem) (see \(name) --help)\n")
            Glibc.exit(ExitStatus.usage)
        }
        do {
            var command = try parseAsRoot(arguments)
            try command.run()  // a tool's run() ends in Tool.run, which exits with its status
            Glibc.exit(ExitStatus.ok)
        } catch {
            fail(error)
        }
    }
}

/// ArgumentParser's message as one line. A negative number after an option reads to it as
/// another option ("Missing value for '--batch <batch>'"): say what was given instead.
func usageProblem(_ message: String, arguments: [String]) -> String {
    var text = message.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: "; ")
    if text.hasPrefix("Error: ") { text.removeFirst("Error: ".count) }
    if text.hasPrefix("Missing value for '"), let end = text.dropFirst(19).firstIndex(where: { $0 == " " || $0 == "'" }) {
        let option = String(text[text.index(text.startIndex, offsetBy: 19)..<end])
        if let i = arguments.firstIndex(of: option), i + 1 < arguments.count {
            let next = arguments[i + 1]
            if next.count > 1, next.hasPrefix("-"), Double(next) != nil { return "\(option) \(next): a negative number is not a value of \(option)" }
        }
    }
    // "Unknown option" → "unknown option", as the tools' own messages read.
    if let first = text.first, first.isUppercase, text.dropFirst().first?.isLowercase == true { text = first.lowercased() + text.dropFirst() }
    return text
}

/// The options a tool's help lists: which take a value, which are flags, and the long name of
/// each short one. Read from ArgumentParser's help, whose OPTIONS lines begin with the names
/// (`-o, --output <file>`, `--batch <batch>`, `-n <count>`, `-q, --quiet`).
struct OptionTable {
    var valueShort: [Character: String?] = [:]  // letter → its long name, if any
    var flagShort = Set<Character>()
    var valueLong = Set<String>()

    init(help: String) {
        var inOptions = false
        for line in help.split(separator: "\n", omittingEmptySubsequences: false) {
            if !line.hasPrefix(" ") { inOptions = line == "OPTIONS:"; continue }
            let t = line.drop { $0 == " " }
            guard inOptions, t.hasPrefix("-") else { continue }
            // The names run up to the description, two spaces on (or the line's end).
            let names = t.range(of: "  ").map { t[..<$0.lowerBound] } ?? t
            let words = names.split(separator: " ").map { $0.hasSuffix(",") ? String($0.dropLast()) : String($0) }
            let takesValue = words.contains { $0.hasPrefix("<") }
            let long = words.first { $0.hasPrefix("--") && $0.count > 2 }
            for w in words where w.count == 2 && w.hasPrefix("-") && w.last!.isLetter {
                if takesValue { valueShort[w.last!] = long } else { flagShort.insert(w.last!) }
            }
            if takesValue, let long { valueLong.insert(long) }
        }
    }
}

/// The arguments rewritten so that ArgumentParser reads them as getopt_long(3) would:
/// - a value attached to a short option is split off, `-n5` as `-n 5`, `-omodel` as `-o model`,
///   also after flags (`-qomodel`);
/// - an option that takes a value takes the next word even when it begins with a dash
///   (`-o -out.tns`, `--shift -2`), unless that word is one of the tool's options (`-o --head`
///   is a missing value, as ArgumentParser says);
/// - `--name=` with nothing after the `=` is an empty value, where ArgumentParser took the next
///   word (an input file) for it.
/// Such values are passed as `--name=value`, the form ArgumentParser takes literally; a short
/// option without a long name keeps the two words. Nothing after `--` is touched.
func getoptArguments(_ arguments: [String], help: String) -> [String] {
    let table = OptionTable(help: help)
    let known = knownOptions(help)
    var out: [String] = []
    var i = 0
    /// The option `name` (`-o` or `--output`) with `value`, as ArgumentParser reads it.
    func attach(_ name: String, _ value: String) -> [String] {
        if name.hasPrefix("--") { return [name + "=" + value] }
        if let long = table.valueShort[name.last!] ?? nil { return [long + "=" + value] }
        return [name, value]
    }
    /// Whether `word`, after an option that takes a value, is that value: anything but one of
    /// the tool's options.
    func isValue(_ word: String) -> Bool {
        guard word.hasPrefix("-"), word.count > 1 else { return true }
        return !known.contains(String(word.prefix { $0 != "=" })) && !(word.count > 2 && !word.hasPrefix("--") && expandsAsOptions(word))
    }
    /// Whether a `-xyz` word is flags (and maybe a value-taking option) of this tool.
    func expandsAsOptions(_ word: String) -> Bool {
        for c in word.dropFirst() {
            if table.valueShort[c] != nil { return true }
            if !table.flagShort.contains(c) { return false }
        }
        return true
    }
    while i < arguments.count {
        let a = arguments[i]
        i += 1
        if a == "--" {
            out += arguments[(i - 1)...]
            break
        }
        if a.hasPrefix("--") {
            let name = String(a.prefix { $0 != "=" })
            if a == name + "=", table.valueLong.contains(name) { out.append(contentsOf: [name, ""]); continue }
            if a == name, table.valueLong.contains(name), i < arguments.count, arguments[i].hasPrefix("-"), isValue(arguments[i]) {
                out += attach(name, arguments[i])
                i += 1
                continue
            }
            out.append(a)
            continue
        }
        let chars = Array(a)
        guard chars.count >= 2, chars[0] == "-", chars[1].isLetter else { out.append(a); continue }
        // -q, -qv, -o, -ofile, -qofile: flags, then perhaps one option that takes a value.
        var k = 1
        while k < chars.count, table.flagShort.contains(chars[k]) { k += 1 }
        guard k < chars.count, table.valueShort[chars[k]] != nil else { out.append(a); continue }
        if k > 1 { out.append("-" + String(chars[1..<k])) }
        let name = "-" + String(chars[k])
        if k + 1 < chars.count {
            out += attach(name, String(chars[(k + 1)...]))
        } else if i < arguments.count, arguments[i].hasPrefix("-"), isValue(arguments[i]) {
            out += attach(name, arguments[i])
            i += 1
        } else {
            out.append(name)
        }
    }
    return out
}

/// Every word of `help` that looks like an option name (`-o`, `--output`).
func knownOptions(_ help: String) -> Set<String> {
    var known = Set<String>()
    var word = ""
    for c in help + " " {
        if c == "-" || c.isLetter || c.isNumber {
            word.append(c)
        } else {
            if word.hasPrefix("-") { known.insert(word) }
            word = ""
        }
    }
    return known
}

/// The first argument that looks like an option but that `help` does not list, or nil.
/// Arguments after `--`, and values that follow an option, cannot be told apart from operands
/// here: only words that begin with `--` (name up to `=`) or a single-letter `-x` are checked.
func unknownOption(in arguments: [String], help: String) -> String? {
    let known = knownOptions(help)
    for a in arguments {
        if a == "--" { break }
        let name = a.hasPrefix("--") ? String(a.prefix { $0 != "=" }) : a
        let isOption = (name.hasPrefix("--") && name.count > 2) || (name.count == 2 && name.hasPrefix("-") && name.last!.isLetter)
        if isOption && !known.contains(name) { return name }
    }
    return nil
}
