import { AppError } from "./errors";

/** `name` without surrounding whitespace, refused when that is empty or longer than `maxChars`. */
export function checkedName(what: string, name: string, maxChars: number): string {
  const trimmed = name.trim();
  if (trimmed === "") throw new AppError("INVALID", `${what} can't be empty`);
  // Characters as Rust counts them (code points), not UTF-16 units.
  const chars = [...trimmed].length;
  if (chars > maxChars) {
    throw new AppError("INVALID", `${what} has ${chars} characters, more than the ${maxChars} allowed`);
  }
  return trimmed;
}
