/*
 * Lexer of latex2sympy2_extended's grammar (PS.g4, PSLexer): longest match at each position,
 * ties to the rule defined first, whitespace and spacing commands skipped, anything without a
 * token an error (as in latex2sympy, whose error listener raises). Bare words such as "tr",
 * "eye", "rows" or "matrix" are tokens there (operator names), so text like "trapezoid"
 * fails to parse exactly as it does in Math-Verify.
 */
#include <string.h>

#include "grade_lex.h"

typedef struct Lit {
    const char *s;
    int type;
    int order;
} Lit;

/* literal tokens, with the rule order used to break ties */
static const Lit LITS[] = {
    /* implicit literals of parser rules come first */
    {"^T", TK_TRANSPOSE, 0}, {"^{T}", TK_TRANSPOSE, 0}, {"^{\\top}", TK_TRANSPOSE, 0},
    {"'", TK_TRANSPOSE, 0}, {"^\\circ", TK_DEGREE, 0}, {"^\\degree", TK_DEGREE, 0},
    {"^\\circle", TK_DEGREE, 0}, {"^\xc2\xb0", TK_DEGREE, 0}, {"^{\\circ}", TK_DEGREE, 0},
    {"^{\\degree}", TK_DEGREE, 0}, {"^{\\circle}", TK_DEGREE, 0}, {"^{\xc2\xb0}", TK_DEGREE, 0},
    /* skipped */
    {"\\,", TK_SKIP, 10}, {"\\thinspace", TK_SKIP, 10}, {"\\:", TK_SKIP, 10},
    {"\\medspace", TK_SKIP, 10}, {"\\;", TK_SKIP, 10}, {"\\thickspace", TK_SKIP, 10},
    {"\\quad", TK_SKIP, 10}, {"\\qquad", TK_SKIP, 10}, {"\\!", TK_SKIP, 10},
    {"\\negthinspace", TK_SKIP, 10}, {"\\negmedspace", TK_SKIP, 10},
    {"\\negthickspace", TK_SKIP, 10}, {"\\$", TK_SKIP, 10}, {"\\vrule", TK_SKIP, 10},
    {"\\vcenter", TK_SKIP, 10}, {"\\vbox", TK_SKIP, 10}, {"\\vskip", TK_SKIP, 10},
    {"\\vspace", TK_SKIP, 10}, {"\\hfil", TK_SKIP, 10},
    /* operators */
    {"+", TK_ADD, 20}, {"\xe2\x88\x94", TK_ADD, 20}, {"\xe2\x8a\x95", TK_ADD, 20},
    {"\xe2\x8a\x9e", TK_ADD, 20}, {"-", TK_SUB, 21}, {"\xe2\x88\x92", TK_SUB, 21},
    {"\xe2\x88\xb8", TK_SUB, 21}, {"*", TK_MUL, 22}, {"\xc3\x97", TK_MUL, 22},
    {"\xe2\x8b\x85", TK_MUL, 22}, {"\xe2\x8b\x84", TK_MUL, 22}, {"\xe2\x8a\xa1", TK_MUL, 22},
    {"\xe2\x88\x97", TK_MUL, 22}, {"\xe2\x8b\x86", TK_MUL, 22}, {"\xe2\x88\x98", TK_MUL, 22},
    {"\xe2\x88\x99", TK_MUL, 22}, {"\xe2\x8a\x97", TK_MUL, 22}, {"\xe2\x8a\xa0", TK_MUL, 22},
    {"\xe2\x8b\x88", TK_MUL, 22}, {"\xe2\x8b\x89", TK_MUL, 22}, {"\xe2\x8b\x8a", TK_MUL, 22},
    {"/", TK_DIV, 23}, {"\xc3\xb7", TK_DIV, 23}, {"\xe2\x88\x95", TK_DIV, 23},
    {"\\over", TK_DIV, 23},
    {"(", TK_LPAREN, 30}, {")", TK_RPAREN, 30}, {"\\(", TK_LPAREN_VIS, 30},
    {"\\)", TK_RPAREN_VIS, 30}, {"\\lgroup", TK_LGROUP, 30}, {"\\rgroup", TK_RGROUP, 30},
    {"{", TK_LBRACE, 30}, {"}", TK_RBRACE, 30}, {"\\{", TK_LBRACE_VIS, 30},
    {"\\}", TK_RBRACE_VIS, 30}, {"\\lbrace", TK_LBRACE_CMD, 30}, {"\\rbrace", TK_RBRACE_CMD, 30},
    {"[", TK_LBRACKET, 30}, {"]", TK_RBRACKET, 30}, {"\\lbrack", TK_LBRACK, 30},
    {"\\rbrack", TK_RBRACK, 30}, {"\\phantom", TK_PHANTOM, 40}, {"\\boxed", TK_BOXED, 40},
    {"|", TK_BAR, 50}, {"\\lvert", TK_LVERT, 50}, {"\\rvert", TK_RVERT, 50},
    {"\\vert", TK_VERT, 50}, {"\\|", TK_NORM, 50}, {"\\langle", TK_LANGLE, 50},
    {"\\rangle", TK_RANGLE, 50}, {"\\lfloor", TK_LFLOOR, 50}, {"\\rfloor", TK_RFLOOR, 50},
    {"\\llcorner", TK_LFLOOR, 50}, {"\\lrcorner", TK_RFLOOR, 50}, {"\\lceil", TK_LCEIL, 50},
    {"\\rceil", TK_RCEIL, 50}, {"\\ulcorner", TK_LCEIL, 50}, {"\\urcorner", TK_RCEIL, 50},
    {"\\lim", TK_LIM, 60}, {"\\to", TK_LIM_APPROACH, 60}, {"\\rightarrow", TK_LIM_APPROACH, 60},
    {"\\Rightarrow", TK_LIM_APPROACH, 60}, {"\\longrightarrow", TK_LIM_APPROACH, 60},
    {"\\Longrightarrow", TK_LIM_APPROACH, 60}, {"\\int", TK_INT, 60}, {"\\sum", TK_SUM, 60},
    {"\\prod", TK_PROD, 60}, {"\\log", TK_FUNC1, 60}, {"\\ln", TK_FUNC1, 60},
    {"\\exp", TK_FUNC1, 60}, {"\\sin", TK_FUNC1, 60}, {"\\cos", TK_FUNC1, 60},
    {"\\tan", TK_FUNC1, 60}, {"\\csc", TK_FUNC1, 60}, {"\\sec", TK_FUNC1, 60},
    {"\\cot", TK_FUNC1, 60}, {"\\Gamma", TK_FUNC_GAMMA, 60}, {"\\gamma", TK_FUNC_GAMMA, 60},
    {"\\arcsin", TK_FUNC1, 60}, {"\\arccos", TK_FUNC1, 60}, {"\\arctan", TK_FUNC1, 60},
    {"\\arccsc", TK_FUNC1, 60}, {"\\arcsec", TK_FUNC1, 60}, {"\\arccot", TK_FUNC1, 60},
    {"\\sinh", TK_FUNC1, 60}, {"\\cosh", TK_FUNC1, 60}, {"\\tanh", TK_FUNC1, 60},
    {"\\arsinh", TK_FUNC1, 60}, {"\\arcosh", TK_FUNC1, 60}, {"\\artanh", TK_FUNC1, 60},
    {"\\arcsinh", TK_FUNC1, 60}, {"\\arccosh", TK_FUNC1, 60}, {"\\arctanh", TK_FUNC1, 60},
    {"arsinh", TK_OPNAME1, 70}, {"arcsinh", TK_OPNAME1, 70}, {"arcosh", TK_OPNAME1, 70},
    {"arccosh", TK_OPNAME1, 70}, {"artanh", TK_OPNAME1, 70}, {"arctanh", TK_OPNAME1, 70},
    {"gcd", TK_OPNAME_MULTI, 70}, {"lcm", TK_OPNAME_MULTI, 70}, {"floor", TK_OPNAME1, 70},
    {"ceil", TK_OPNAME1, 70}, {"\\sqrt", TK_SQRT, 80}, {"\\gcd", TK_FUNC_MULTI, 80},
    {"\\lcm", TK_FUNC_MULTI, 80}, {"\\floor", TK_FUNC1, 80}, {"\\ceil", TK_FUNC1, 80},
    {"\\max", TK_FUNC_MULTI, 80}, {"\\min", TK_FUNC_MULTI, 80}, {"\\det", TK_FUNC1, 80},
    {"eye", TK_OPNAME1, 90}, {"zeros", TK_OPNAME_MULTI, 90}, {"ones", TK_OPNAME_MULTI, 90},
    {"cols", TK_OPNAME1, 90}, {"rows", TK_OPNAME1, 90}, {"diag", TK_OPNAME_MULTI, 90},
    {"norm", TK_OPNAME1, 90}, {"rank", TK_OPNAME1, 90}, {"trace", TK_OPNAME1, 90},
    {"tr", TK_OPNAME1, 90}, {"rref", TK_OPNAME1, 90}, {"hstack", TK_OPNAME_MULTI, 90},
    {"vstack", TK_OPNAME_MULTI, 90}, {"orth", TK_OPNAME_MULTI, 90},
    {"ortho", TK_OPNAME_MULTI, 90}, {"orthogonal", TK_OPNAME_MULTI, 90},
    {"orthogonalize", TK_OPNAME_MULTI, 90}, {"nullspace", TK_OPNAME1, 90},
    {"eig", TK_OPNAME1, 90}, {"eigen", TK_OPNAME1, 90}, {"diagonalize", TK_OPNAME1, 90},
    {"eigenvals", TK_OPNAME1, 90}, {"eigenvalues", TK_OPNAME1, 90},
    {"eigenvects", TK_OPNAME1, 90}, {"eigenvectors", TK_OPNAME1, 90}, {"svd", TK_OPNAME1, 90},
    {"SVD", TK_OPNAME1, 90},
    {"\\times", TK_TIMES, 100}, {"\\cdot", TK_CDOT, 100}, {"\\div", TK_CMD_DIV, 100},
    {"\\frac", TK_FRAC, 100}, {"\\dfrac", TK_FRAC, 100}, {"\\tfrac", TK_FRAC, 100},
    {"\\cfrac", TK_FRAC, 100}, {"\\binom", TK_BINOM, 100}, {"\\tbinom", TK_BINOM, 100},
    {"\\dbinom", TK_BINOM, 100}, {"\\choose", TK_CHOOSE, 100}, {"\\mod", TK_MOD, 100},
    {"\\mathit", TK_MATHIT, 100}, {"\\operatorname", TK_OPERATORNAME, 100},
    {"matrix", TK_MATRIX_WORD, 110}, {"pmatrix", TK_MATRIX_WORD, 110},
    {"bmatrix", TK_MATRIX_WORD, 110}, {"vmatrix", TK_MATRIX_WORD, 110},
    {"\\begin{matrix}", TK_MATRIX_START, 111}, {"\\begin{pmatrix}", TK_MATRIX_START, 111},
    {"\\begin{bmatrix}", TK_MATRIX_START, 111}, {"\\end{matrix}", TK_MATRIX_END, 111},
    {"\\end{pmatrix}", TK_MATRIX_END, 111}, {"\\end{bmatrix}", TK_MATRIX_END, 111},
    {"\\end{array}", TK_ARRAY_END, 112}, {"\\begin{vmatrix}", TK_DET_START, 113},
    {"\\end{vmatrix}", TK_DET_END, 113}, {"&", TK_AMP, 114}, {"\\\\", TK_ROWSEP, 114},
    {"_", TK_UNDERSCORE, 120}, {"^", TK_CARET, 120}, {":", TK_COLON, 120},
    {";", TK_SEMICOLON, 120}, {",", TK_COMMA, 120}, {".", TK_PERIOD, 120},
    {"e", TK_EXP_E, 131}, {"\\exponentialE", TK_EXP_E, 131}, {"E", TK_E_NOTATION_E, 132},
    {"\\xrightarrow", TK_UNSUPPORTED, 140}, {"\\xRightarrow", TK_UNSUPPORTED, 140},
    {"<->", TK_UNSUPPORTED, 140}, {"<=>", TK_UNSUPPORTED, 140},
    {"\\leftrightarrow", TK_UNSUPPORTED, 140}, {"\\Leftrightarrow", TK_UNSUPPORTED, 140},
    {"\\in", TK_IN, 160}, {"=", TK_ASSIGN, 161}, {"\xe2\x89\xa1", TK_ASSIGN, 161},
    {"\xe2\x89\xa3", TK_ASSIGN, 161}, {"\xe2\x89\x9f", TK_ASSIGN, 161},
    {"\xe2\x89\x8e", TK_ASSIGN, 161}, {"\xe2\x89\x8f", TK_ASSIGN, 161},
    {"\xe2\x89\x90", TK_ASSIGN, 161}, {"\xe2\x89\x91", TK_ASSIGN, 161},
    {"\xe2\x89\x92", TK_ASSIGN, 161}, {"\xe2\x89\x93", TK_ASSIGN, 161},
    {"\xe2\x89\x94", TK_ASSIGN, 161}, {"\xe2\x89\x95", TK_ASSIGN, 161},
    {"\xe2\x89\x96", TK_ASSIGN, 161}, {"\xe2\x89\x97", TK_ASSIGN, 161},
    {"==", TK_EQUAL, 162}, {"\\equiv", TK_EQUAL, 162}, {"~=", TK_APPROX, 163},
    {"\xe2\x89\x88", TK_APPROX, 163}, {"\xe2\x89\x8a", TK_APPROX, 163},
    {"\xe2\x89\x8b", TK_APPROX, 163}, {"\xe2\x89\x83", TK_APPROX, 163},
    {"\xe2\x89\x85", TK_APPROX, 163}, {"\\approx", TK_APPROX, 163}, {"<", TK_LT, 164},
    {"\xe2\x89\xaa", TK_LT, 164}, {"\xe2\x89\xba", TK_LT, 164}, {"\xe2\x8b\x96", TK_LT, 164},
    {"\\lt", TK_LT, 164}, {"\\leq", TK_LTE, 165}, {"\\le", TK_LTE, 165},
    {"\\leqslant", TK_LTE, 165}, {"\xe2\x89\xa4", TK_LTE, 165}, {"\xe2\x89\xa6", TK_LTE, 165},
    {"\xe2\x89\xb2", TK_LTE, 165}, {"\xe2\x89\xbe", TK_LTE, 165}, {"<=", TK_LTE, 165},
    {">", TK_GT, 166}, {"\xe2\x89\xab", TK_GT, 166}, {"\xe2\x89\xbb", TK_GT, 166},
    {"\xe2\x8b\x97", TK_GT, 166}, {"\\gt", TK_GT, 166}, {"\\geq", TK_GTE, 167},
    {"\\ge", TK_GTE, 167}, {"\\geqslant", TK_GTE, 167}, {"\xe2\x89\xa5", TK_GTE, 167},
    {"\xe2\x89\xa7", TK_GTE, 167}, {"\xe2\x89\xb3", TK_GTE, 167}, {"\xe2\x89\xbf", TK_GTE, 167},
    {">=", TK_GTE, 167}, {"!=", TK_UNEQUAL, 168}, {"!==", TK_UNEQUAL, 168},
    {"\\ne", TK_UNEQUAL, 168}, {"\\neq", TK_UNEQUAL, 168}, {"\\not\\equiv", TK_UNEQUAL, 168},
    {"\xe2\x89\xa0", TK_UNEQUAL, 168}, {"\xe2\x89\x81", TK_UNEQUAL, 168},
    {"\xe2\x89\x84", TK_UNEQUAL, 168}, {"\xe2\x89\x87", TK_UNEQUAL, 168},
    {"\xe2\x89\x89", TK_UNEQUAL, 168}, {"\xe2\x89\xa2", TK_UNEQUAL, 168}, {"!", TK_BANG, 169},
    {"\\partial", TK_SYMBOL, 173}, {"\\infty", TK_SYMBOL, 173}, {"\\$\\infty", TK_SYMBOL, 173},
    {"\\infty\\%", TK_SYMBOL, 173}, {"\\infty%", TK_SYMBOL, 173},
    {"\\mathbb{N}", TK_SETLIT, 180}, {"\xe2\x84\x95", TK_SETLIT, 180},
    {"\\mathbb{Z}", TK_SETLIT, 180}, {"\xe2\x84\xa4", TK_SETLIT, 180},
    {"\\mathbb{Q}", TK_SETLIT, 180}, {"\xe2\x84\x9a", TK_SETLIT, 180},
    {"\\mathbb{R}", TK_SETLIT, 180}, {"\xe2\x84\x9d", TK_SETLIT, 180},
    {"\\mathbb{C}", TK_SETLIT, 180}, {"\xe2\x84\x82", TK_SETLIT, 180},
    {"\\mathbb{P}", TK_SETLIT, 180}, {"\xe2\x84\x99", TK_SETLIT, 180},
    {"\\cup", TK_UNION, 200}, {"\xe2\x88\xaa", TK_UNION, 200}, {"\\cap", TK_INTERSECTION, 200},
    {"\xe2\x88\xa9", TK_INTERSECTION, 200}, {"\\setminus", TK_SET_MINUS, 200},
    {"\xe2\x88\x96", TK_SET_MINUS, 200}, {"\\pm", TK_PLUS_MINUS, 200},
    {"\xc2\xb1", TK_PLUS_MINUS, 200}, {"\xe2\x88\x93", TK_PLUS_MINUS, 200},
    {"\\mp", TK_PLUS_MINUS, 200}, {"\\emptyset", TK_SET_EMPTY, 200},
    {"\xe2\x88\x85", TK_SET_EMPTY, 200}, {"\\{\\}", TK_SET_EMPTY, 200},
    {"\\lbrace\\rbrace", TK_SET_EMPTY, 200}, {"\\supseteq", TK_SUPSET, 200},
    {"\xe2\x8a\x87", TK_SUPSET, 200}, {"\\subseteq", TK_SUBSET, 200},
    {"\xe2\x8a\x86", TK_SUBSET, 200}, {"\\notin", TK_NOTIN, 200},
    {"\xe2\x88\x89", TK_NOTIN, 200},
};

static const char *const GREEK[] = {
    "\\alpha", "\xce\xb1", "\\beta", "\xce\xb2", "\\gamma", "\xce\xb3", "\\Gamma", "\xce\x93",
    "\\delta", "\xce\xb4", "\\Delta", "\xce\x94", "\\epsilon", "\xce\xb5", "\\varepsilon",
    "\xcf\xb5", "\\zeta", "\xce\xb6", "\\eta", "\xce\xb7", "\\theta", "\xce\xb8", "\\Theta",
    "\xce\x98", "\\vartheta", "\xcf\x91", "\\iota", "\xce\xb9", "\\kappa", "\xce\xba",
    "\\lambda", "\xce\xbb", "\\Lambda", "\xce\x9b", "\\mu", "\xce\xbc", "\\nu", "\xce\xbd",
    "\\xi", "\xce\xbe", "\\Xi", "\xce\x9e", "\\omicron", "\xce\xbf", "\\pi", "\xcf\x80", "\\Pi",
    "\xce\xa0", "\\varpi", "\xcf\x96", "\\rho", "\xcf\x81", "\\varrho", "\xcf\xb1", "\\sigma",
    "\xcf\x83", "\\Sigma", "\xce\xa3", "\\varsigma", "\xcf\x82", "\\tau", "\xcf\x84",
    "\\upsilon", "\xcf\x85", "\\Upsilon", "\xce\xa5", "\\phi", "\xcf\x86", "\\Phi", "\xce\xa6",
    "\\varphi", "\xcf\x95", "\\chi", "\xcf\x87", "\\psi", "\xcf\x88", "\\Psi", "\xce\xa8",
    "\\omega", "\xcf\x89", "\\Omega", "\xce\xa9",
};

static const char *const OTHER_SYMBOLS[] = {
    "\\Bbbk", "\\wp", "\\nabla", "\\bigstar", "\\angle", "\\nexists", "\\diagdown",
    "\\measuredangle", "\\eth", "\xe2\x84\xb5", "\xe2\x84\xb6", "\xe2\x84\xb7", "\xe2\x84\xb8",
    "\\diagup", "\\sphericalangle", "\\clubsuit", "\\varnothing", "\\Diamond", "\\complement",
    "\\diamondsuit", "\\imath", "\\Finv", "\\triangledown", "\\heartsuit", "\\jmath", "\\Game",
    "\\triangle", "\\spadesuit", "\\ell", "\\hbar", "\\vartriangle", "\\hslash",
    "\\blacklozenge", "\\lozenge", "\\blacksquare", "\\mho", "\\blacktriangle", "\\sharp",
    "\\prime", "\\Im", "\\flat", "\\square", "\\backprime", "\\Re", "\\natural", "\\surd",
    "\\circledS",
};

static const char *const ACCENTS[] = {
    "\\acute", "\\bar", "\\overline", "\\breve", "\\check", "\\widecheck", "\\dot", "\\ddot",
    "\\grave", "\\hat", "\\tilde", "\\widetilde", "\\vec", "\\overrightarrow", "\\bm",
    "\\boldsymbol", "\\text", "\\textit", "\\textbf", "\\textnormal", "\\mathbb", "\\mathbin",
    "\\mathbf", "\\mathcal", "\\mathclap", "\\mathclose", "\\mathellipsis", "\\mathfrak",
    "\\mathinner", "\\mathit", "\\mathnormal", "\\mathop", "\\mathopen", "\\mathord",
    "\\mathpunct", "\\mathrel", "\\mathring", "\\mathrlap", "\\mathrm", "\\mathscr", "\\mathsf",
    "\\mathsterling", "\\mathtt", "\\mbox",
};

static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }
static int is_alpha(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'); }
static int is_ws(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }

static size_t prefix_len(const char *s, size_t n, size_t i, const char *lit) {
    size_t k = strlen(lit);
    return i + k <= n && memcmp(s + i, lit, k) == 0 ? k : 0;
}

/* NUMBER: DIGIT+ | DIGIT* '.' DIGIT+ (longest) */
static size_t match_number(const char *s, size_t n, size_t i) {
    size_t j = i;
    while (j < n && is_digit(s[j])) j++;
    size_t best = j - i;
    if (j < n && s[j] == '.' && j + 1 < n && is_digit(s[j + 1])) {
        size_t k = j + 1;
        while (k < n && is_digit(s[k])) k++;
        best = k - i;
    }
    return best;
}

/* Digit groups written with thin spaces or spaces as thousands separators ("10\\,000",
 * "1 000 000"): in LaTeX math mode they render as one number. latex2sympy reads them as
 * juxtaposed numbers (10\\,000 -> 10 * 0 = 0, 12 345 -> 357 by its mixed-fraction rule);
 * here a run of 1-3 digits followed by groups of exactly 3 digits is one NUMBER token.
 * Returns the token length, or 0 when the text is not such a run. */
static size_t match_grouped_number(const char *s, size_t n, size_t i) {
    size_t j = i;
    while (j < n && is_digit(s[j])) j++;
    if (j - i < 1 || j - i > 3) return 0;
    size_t end = 0;
    for (;;) {
        size_t k = j;
        if (k + 1 < n && s[k] == '\\' && (s[k + 1] == ',' || s[k + 1] == ' ')) k += 2;
        else if (k < n && s[k] == ' ') k += 1;
        else break;
        size_t d = k;
        while (d < n && is_digit(s[d])) d++;
        if (d - k != 3) break;
        j = end = d;
    }
    if (!end) return 0;
    if (end + 1 < n && s[end] == '.' && is_digit(s[end + 1])) {
        end++;
        while (end < n && is_digit(s[end])) end++;
    }
    return end - i;
}

int glex(const char *s, size_t n, GTok *out, int max, int *count) {
    int nt = 0;
    size_t i = 0;
    while (i < n) {
        if (is_ws(s[i])) {
            i++;
            continue;
        }
        size_t best = 0;
        int btype = -1, border = 1 << 30;
#define CONSIDER(len_, type_, order_)                                                          \
    do {                                                                                       \
        size_t L_ = (len_);                                                                    \
        if (L_ > best || (L_ == best && L_ > 0 && (order_) < border)) {                        \
            best = L_;                                                                         \
            btype = (type_);                                                                   \
            border = (order_);                                                                 \
        }                                                                                      \
    } while (0)
        for (size_t k = 0; k < sizeof LITS / sizeof LITS[0]; k++)
            if (LITS[k].s[0] == s[i]) CONSIDER(prefix_len(s, n, i, LITS[k].s), LITS[k].type, LITS[k].order);
        /* CMD_ARRAY_START: \begin{array}{[clr]*} */
        {
            size_t L = prefix_len(s, n, i, "\\begin{array}{");
            if (L) {
                size_t j = i + L;
                while (j < n && (s[j] == 'c' || s[j] == 'l' || s[j] == 'r')) j++;
                if (j < n && s[j] == '}') CONSIDER(j + 1 - i, TK_ARRAY_START, 112);
            }
        }
        /* DIFFERENTIAL: 'd' WS* ([a-zA-Z] | '\' [a-zA-Z]+) */
        if (s[i] == 'd') {
            size_t j = i + 1;
            while (j < n && is_ws(s[j])) j++;
            if (j < n && is_alpha(s[j])) CONSIDER(j + 1 - i, TK_DIFFERENTIAL, 130);
            else if (j + 1 < n && s[j] == '\\' && is_alpha(s[j + 1])) {
                size_t k = j + 1;
                while (k < n && is_alpha(s[k])) k++;
                CONSIDER(k - i, TK_DIFFERENTIAL, 130);
            }
        }
        if (is_alpha(s[i]) && s[i] != 'e' && s[i] != 'E') CONSIDER(1, TK_LETTER, 133);
        /* NUMBER, E_NOTATION, PERCENT_NUMBER */
        {
            size_t L = match_number(s, n, i);
            if (L) {
                CONSIDER(L, TK_NUMBER, 150);
                CONSIDER(match_grouped_number(s, n, i), TK_NUMBER, 150);
                size_t j = i + L;
                if (j < n && s[j] == 'E') {
                    size_t k = j + 1;
                    if (k < n && (s[k] == '+' || s[k] == '-')) k++;
                    else if (prefix_len(s, n, k, "\xe2\x88\x92") || prefix_len(s, n, k, "\xe2\x88\xb8"))
                        k += 3;
                    else if (prefix_len(s, n, k, "\xe2\x88\x94") || prefix_len(s, n, k, "\xe2\x8a\x95") ||
                             prefix_len(s, n, k, "\xe2\x8a\x9e"))
                        k += 3;
                    size_t d = k;
                    while (d < n && is_digit(s[d])) d++;
                    if (d > k) CONSIDER(d - i, TK_E_NOTATION, 151);
                }
                size_t k = j;
                if (k < n && is_ws(s[k])) k++;
                if (prefix_len(s, n, k, "\\%")) CONSIDER(k + 2 - i, TK_PERCENT_NUMBER, 170);
                else if (k < n && s[k] == '%') CONSIDER(k + 1 - i, TK_PERCENT_NUMBER, 170);
            }
        }
        /* GREEK_CMD / OTHER_SYMBOL_CMD: the name plus an optional single space */
        for (size_t k = 0; k < sizeof GREEK / sizeof GREEK[0]; k++) {
            size_t L = prefix_len(s, n, i, GREEK[k]);
            if (L) CONSIDER(L + (i + L < n && s[i + L] == ' '), TK_GREEK, 171);
        }
        for (size_t k = 0; k < sizeof OTHER_SYMBOLS / sizeof OTHER_SYMBOLS[0]; k++) {
            size_t L = prefix_len(s, n, i, OTHER_SYMBOLS[k]);
            if (L) CONSIDER(L + (i + L < n && s[i + L] == ' '), TK_OTHER_SYMBOL, 172);
        }
        /* ACCENT: cmd WS? '{' .. first '}' */
        if (s[i] == '\\')
            for (size_t k = 0; k < sizeof ACCENTS / sizeof ACCENTS[0]; k++) {
                size_t L = prefix_len(s, n, i, ACCENTS[k]);
                if (!L) continue;
                size_t j = i + L;
                if (j < n && is_ws(s[j])) j++;
                if (j >= n || s[j] != '{') continue;
                size_t q = j + 1;
                while (q < n && s[q] != '}') q++;
                if (q < n) CONSIDER(q + 1 - i, TK_ACCENT, 190);
            }
#undef CONSIDER
        if (best == 0) return -1; /* no token: latex2sympy's lexer raises */
        if (btype != TK_SKIP) {
            if (nt >= max - 1) return -2;
            out[nt].type = btype;
            out[nt].s = s + i;
            out[nt].n = best;
            nt++;
        }
        i += best;
    }
    out[nt].type = TK_EOF;
    out[nt].s = s + n;
    out[nt].n = 0;
    *count = nt;
    return 0;
}
